"""What every ``kbqa api`` request passes through: the API key (and, before listening,
the check that without one the server stays on loopback), the body limits, and errors
answered in OpenAI's format (``{"error": {"message", "type", "param", "code"}}``)."""

from __future__ import annotations

import hmac
import ipaddress
import re
from typing import Any

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ...errors import KbqaError

UPLOAD_PATH = re.compile(r"/v1/knowledge-bases/[^/]+/documents/?")
MB = 1024 * 1024


# -- errors in OpenAI's format ------------------------------------------


class ApiError(HTTPException):
    """An error answered as ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        kind: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(status, message, headers)
        self.code = code
        self.kind = kind
        self.param = param


def error_body(
    message: str, kind: str, code: str | None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_response(error: StarletteHTTPException) -> JSONResponse:
    code = getattr(error, "code", None)
    kind = getattr(error, "kind", None)
    if kind is None:
        kind = "server_error" if error.status_code >= 500 else "invalid_request_error"
    param = getattr(error, "param", None)
    return JSONResponse(
        error_body(str(error.detail), kind, code, param), error.status_code, headers=error.headers
    )


# -- middleware ---------------------------------------------------------------


class RequireKey:
    """Every request needs ``Authorization: Bearer <key>`` (compared in constant time),
    except a GET of a ``signed`` path, whose route checks the link's own signature."""

    def __init__(self, app: ASGIApp, key: str, signed: re.Pattern[str] | None = None) -> None:
        self.app = app
        self._key = key.encode()
        self._signed = signed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        signed = (
            self._signed is not None
            and scope["type"] == "http"
            and scope["method"] in ("GET", "HEAD")
            and self._signed.fullmatch(scope["path"])
        )
        if scope["type"] == "http" and not signed:
            scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                token.strip().encode(), self._key
            ):
                body = error_body(
                    "missing or wrong API key: send `Authorization: Bearer <KBQA_API_KEY>`",
                    "invalid_request_error",
                    "invalid_api_key",
                )
                response = JSONResponse(body, 401, headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class LimitBody:
    """Refuses request bodies over the limit (uploads have their own, larger one): by
    ``Content-Length`` before reading, and by counting what arrives for chunked ones."""

    def __init__(self, app: ASGIApp, json_limit: int, upload_limit: int) -> None:
        self.app = app
        self._json_limit = json_limit
        self._upload_limit = upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope["method"] == "POST" and UPLOAD_PATH.fullmatch(scope["path"])
        limit = self._upload_limit if upload else self._json_limit
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await error_response(too_large(limit))(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise too_large(limit)
            return message

        await self.app(scope, counted, send)


def too_large(limit: int) -> ApiError:
    return ApiError(413, f"request body larger than {limit / MB:g} MB", "request_too_large")


def check_exposure(host: str, api_key: str | None) -> None:
    """Without a key, listen only on loopback: anyone who reaches the port could read
    the documents, upload files and spend the machine's time."""
    if api_key:
        return
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise KbqaError(
            f"refusing to listen on {host} without an API key: set KBQA_API_KEY (clients "
            "then send `Authorization: Bearer <key>`), or listen on 127.0.0.1"
        )
