"""The IoT Hub service API calls fulfilment needs (api-version 2021-04-12), with parsed results.

Each call takes a token from the bucket Azure meters it in: device and module reads, lists and
deletes the identity ``registry`` (100/min per S1 unit: the scarce one, kept for the DELETEs),
twin reads ``twin_read`` (100/s on S1), queries ``query`` (20/min per S1 unit, many devices
each). GETs and DELETEs answer 404 as a response with ``found`` False.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from .http import AzureHttp, AzureResponse

__all__ = ["IotHubClient", "HUB_API_VERSION"]

HUB_API_VERSION = "2021-04-12"


def _id(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("an identifier must be a non-empty string")
    return quote(value, safe="")


def _if_match(etag: str) -> str:
    """The hub wants the etag quoted, as its SDKs send it (``"*"`` for any version)."""
    if len(etag) > 1 and etag[0] == '"' and etag[-1] == '"':
        return etag
    return f'"{etag}"'


class IotHubClient:
    def __init__(self, http: AzureHttp) -> None:
        self._http = http
        self.hostname = http.target.hostname
        self.target = http.target
        self._listed: tuple[str, AzureResponse] | None = None

    def __repr__(self) -> str:
        return f"IotHubClient({self.hostname!r})"

    def _get(self, path: str, bucket: str = "registry") -> AzureResponse:
        return self._http.request("GET", path, bucket=bucket, missing_ok=True)

    def _delete(self, path: str, etag: str | None) -> AzureResponse:
        headers = {"If-Match": _if_match(etag or "*")}
        return self._http.request(
            "DELETE", path, bucket="registry", headers=headers, missing_ok=True
        )

    def get_device(self, device_id: str) -> AzureResponse:
        return self._get(f"/devices/{_id(device_id)}")

    def get_twin(self, device_id: str) -> AzureResponse:
        return self._get(f"/twins/{_id(device_id)}", bucket="twin_read")

    def list_modules(self, device_id: str) -> AzureResponse:
        """The device's modules: ``data`` is a list (None with ``found`` False if no device)."""
        return self._get(f"/devices/{_id(device_id)}/modules")

    def list_modules_once(self, device_id: str) -> AzureResponse:
        """``list_modules``, remembered for the next calls about the same device: a device's
        module documents are read one after the other, so its modules cost one registry call,
        not one per module. A client serves one worker thread."""
        if self._listed is None or self._listed[0] != device_id:
            self._listed = (device_id, self.list_modules(device_id))
        return self._listed[1]

    def get_module(self, device_id: str, module_id: str) -> AzureResponse:
        return self._get(f"/devices/{_id(device_id)}/modules/{_id(module_id)}")

    def get_module_twin(self, device_id: str, module_id: str) -> AzureResponse:
        return self._get(f"/twins/{_id(device_id)}/modules/{_id(module_id)}", bucket="twin_read")

    def delete_module(
        self, device_id: str, module_id: str, etag: str | None = "*"
    ) -> AzureResponse:
        return self._delete(f"/devices/{_id(device_id)}/modules/{_id(module_id)}", etag)

    def delete_device(self, device_id: str, etag: str | None = "*") -> AzureResponse:
        """Deleting the device deletes its twin (and, in Azure, its modules) too."""
        return self._delete(f"/devices/{_id(device_id)}", etag)

    def query(self, sql: str, page_size: int = 100) -> Iterator[Any]:
        """Yield every result of an IoT Hub query (e.g. ``SELECT * FROM devices``)."""
        return self._http.pages(
            "/devices/query", bucket="query", body={"query": sql}, page_size=page_size
        )
