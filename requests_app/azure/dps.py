"""The DPS service API calls fulfilment needs (api-version 2021-10-01), with parsed results.

GETs and DELETEs answer 404 as a response with ``found`` False; queries are iterators that follow
continuation tokens to the end. Every DPS operation shares the target's one ``dps`` bucket.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from .http import AzureHttp, AzureResponse

__all__ = ["DpsClient", "DPS_API_VERSION"]

DPS_API_VERSION = "2021-10-01"
SELECT_ALL = {"query": "SELECT *"}


def _id(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("an identifier must be a non-empty string")
    return quote(value, safe="")


class DpsClient:
    def __init__(self, http: AzureHttp) -> None:
        self._http = http
        self.hostname = http.target.hostname
        self.target = http.target

    def __repr__(self) -> str:
        return f"DpsClient({self.hostname!r})"

    def _get(self, path: str) -> AzureResponse:
        return self._http.request("GET", path, bucket="dps", missing_ok=True)

    def _delete(self, path: str, etag: str | None) -> AzureResponse:
        headers = {"If-Match": etag} if etag else None
        return self._http.request("DELETE", path, bucket="dps", headers=headers, missing_ok=True)

    def get_enrollment(self, registration_id: str) -> AzureResponse:
        return self._get(f"/enrollments/{_id(registration_id)}")

    def get_enrollment_group(self, group_id: str) -> AzureResponse:
        return self._get(f"/enrollmentGroups/{_id(group_id)}")

    def get_registration(self, registration_id: str) -> AzureResponse:
        return self._get(f"/registrations/{_id(registration_id)}")

    def delete_enrollment(self, registration_id: str, etag: str | None = "*") -> AzureResponse:
        return self._delete(f"/enrollments/{_id(registration_id)}", etag)

    def delete_registration(self, registration_id: str, etag: str | None = "*") -> AzureResponse:
        return self._delete(f"/registrations/{_id(registration_id)}", etag)

    def create_or_update_enrollment(
        self, body: dict[str, Any], etag: str | None = None
    ) -> AzureResponse:
        """PUT the individual enrollment ``body["registrationId"]`` (If-Match when etag given)."""
        headers = {"If-Match": etag} if etag else None
        path = f"/enrollments/{_id(body.get('registrationId'))}"
        return self._http.request("PUT", path, bucket="dps", json_body=body, headers=headers)

    def query_enrollment_groups(self, page_size: int = 100) -> Iterator[Any]:
        return self._http.pages(
            "/enrollmentGroups/query", bucket="dps", body=SELECT_ALL, page_size=page_size
        )

    def query_enrollments(self, page_size: int = 100) -> Iterator[Any]:
        return self._http.pages(
            "/enrollments/query", bucket="dps", body=SELECT_ALL, page_size=page_size
        )

    def query_group_registrations(self, group_id: str, page_size: int = 100) -> Iterator[Any]:
        """Registration records of the devices provisioned through enrollment group ``group_id``."""
        return self._http.pages(
            f"/registrations/{_id(group_id)}/query", bucket="dps", body=None, page_size=page_size
        )
