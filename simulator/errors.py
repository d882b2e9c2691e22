"""Error answers, shaped exactly as each service sends them.

DPS:     {"errorCode": 404201, "trackingId", "message", "timestampUtc", "info"}
         plus header ``x-ms-error-code: 404201``.
IoT Hub: {"Message": "ErrorCode:DeviceNotFound;...", "ExceptionMessage": "Tracking ID:...-G:..-
         TimeStamp:..."} plus header ``iothub-errorcode: DeviceNotFound``.

Each failure is raised as one ``ApiError`` carrying both services' codes for the same meaning; the
router renders it in the format of the service that was called.
"""

import datetime
import uuid

DPS = "dps"
HUB = "hub"

# kind -> (http status, DPS error code, IoT Hub error name)
KINDS = {
    "bad_request": (400, 400004, "ArgumentInvalid"),
    "bad_format": (400, 400004, "IotHubFormatError"),
    "bad_api_version": (400, 400001, "InvalidProtocolVersion"),
    "unauthorized": (401, 401002, "IotHubUnauthorizedAccess"),
    "enrollment_not_found": (404, 404201, "DeviceNotFound"),
    "registration_not_found": (404, 404202, "DeviceNotFound"),
    "device_not_found": (404, 404201, "DeviceNotFound"),
    "module_not_found": (404, 404201, "ModuleNotFound"),
    "route_not_found": (404, 404000, "NotFound"),
    "method_not_allowed": (405, 405000, "MethodNotAllowed"),
    "conflict": (409, 409201, "DeviceAlreadyExists"),
    "module_conflict": (409, 409201, "ModuleAlreadyExistsOnDevice"),
    "precondition": (412, 412201, "PreconditionFailed"),
    "throttled": (429, 429001, "ThrottlingException"),
    "server_error": (500, 500001, "ServerError"),
    "unavailable": (503, 503001, "ServiceUnavailable"),
}


class ApiError(Exception):
    def __init__(self, kind, message, info=None, headers=None):
        super().__init__(message)
        self.kind = kind
        self.status, self.dps_code, self.hub_name = KINDS[kind]
        self.message = message
        self.info = info or {}
        self.headers = dict(headers or {})

    def render(self, service, now=None):
        """Return (status, headers, body dict) in the given service's format."""
        now = now or datetime.datetime.now(datetime.UTC)
        headers = dict(self.headers)
        if service == DPS:
            body = {
                "errorCode": self.dps_code,
                "trackingId": str(uuid.uuid4()),
                "message": self.message,
                "timestampUtc": now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z",
                "info": self.info,
            }
            headers["x-ms-error-code"] = str(self.dps_code)
        else:
            tracking = uuid.uuid4().hex.upper()
            stamp = now.strftime("%m/%d/%Y %H:%M:%S")
            body = {
                "Message": f"ErrorCode:{self.hub_name};{self.message}",
                "ExceptionMessage": f"Tracking ID:{tracking}-G:0-TimeStamp:{stamp}",
            }
            headers["iothub-errorcode"] = self.hub_name
        return self.status, headers, body


try:
    import httpx

    _DropBase = httpx.RemoteProtocolError
except ImportError:  # pragma: no cover - httpx is a project dependency
    _DropBase = ConnectionError


class SimulatedDrop(_DropBase):
    """The connection is dropped without an answer (a served simulator closes the socket)."""
