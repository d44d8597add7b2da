"""HTTP(S) probe: one request (plus redirects), judged on the final response (case C34).

Each round uses a fresh ``httpx.AsyncClient`` (no proxies from the environment, no pooled
connection from an earlier round) over a small transport whose network backend resolves
every host by the target's ``ip_family`` policy and falls back to the other family as the
TCP probe does; TLS still verifies and sends SNI for the URL's host name, and each redirect
hop to another host is resolved by the same policy. Phases come from httpcore's ``trace``
extension and describe the final hop: ``resolve`` and ``connect`` (when that hop opened a
connection), ``tls``, and ``first_byte`` (request written to response headers received).
``rtt_s`` is the final hop's time to first byte: from the start of that request, connection
set-up included, to its response headers.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpcore
import httpx

from probes.context import ProbeContext
from probes.resolve import Resolved, ResolveError, endpoint, resolve_within
from probes.result import ProbeKind, ProbeResult, ProbeStatus
from probes.specs import HttpTarget, IpFamily
from probes.tcp import ConnectFailed, connect_in_order, seconds_text

BODY_CAP_BYTES = 1 << 20
MAX_REDIRECTS = 10
USER_AGENT = "linkwatch-probe/0.1"
_INNER_GRACE_S = 0.05


class _Stage(StrEnum):
    RESOLVE = "resolve"
    CONNECT = "connect"
    TLS = "tls"
    RESPONSE = "response"
    BODY = "body"


@dataclass
class _Round:
    """Mutable notes on one round, written by the backend, the trace hook and the probe."""

    deadline: float
    policy: IpFamily
    stage: _Stage = _Stage.RESOLVE
    url: str = ""
    host: str = ""
    where: str = ""
    address: str | None = None
    family: int | None = None
    fallback: str | None = None
    failures: list[str] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    hop_started: float = 0.0
    tls_started: float = 0.0
    sent_at: float = 0.0
    rtt_s: float | None = None

    def new_hop(self, url: str) -> None:
        """Start timing one request of the redirect chain."""
        self.url, self.stage, self.rtt_s = url, _Stage.RESPONSE, None
        self.phases = {}
        self.hop_started = self.sent_at = time.perf_counter()

    async def trace(self, event: str, info: Mapping[str, Any]) -> None:
        """Record httpcore trace events (``connection.start_tls.*``, ``http11.*``)."""
        now = time.perf_counter()
        if event == "connection.start_tls.started":
            self.stage, self.tls_started = _Stage.TLS, now
        elif event == "connection.start_tls.complete":
            self.stage, self.phases["tls"] = _Stage.RESPONSE, now - self.tls_started
        elif event == "http11.send_request_body.complete":
            self.sent_at = now
        elif event == "http11.receive_response_headers.complete":
            self.phases["first_byte"] = now - self.sent_at
            self.rtt_s = now - self.hop_started


def _root_oserror(exc: BaseException) -> OSError:
    """Return the innermost ``OSError`` with an errno under httpcore's and anyio's wrappers."""
    found = OSError(str(exc) or type(exc).__name__)
    cause: BaseException | None = exc
    for _ in range(8):  # the chain is short; bound the walk anyway
        if cause is None:
            break
        if isinstance(cause, OSError) and cause.errno is not None:
            return cause
        cause = cause.__cause__
    return found


class _PolicyBackend(httpcore.AsyncNetworkBackend):
    """Connect by the round's address-family policy, with the TCP probe's fallback."""

    def __init__(self, rnd: _Round) -> None:
        self._rnd = rnd
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        rnd = self._rnd
        rnd.stage, rnd.host = _Stage.RESOLVE, host
        candidates, rnd.phases["resolve"] = await resolve_within(host, rnd.policy, rnd.deadline)
        rnd.stage = _Stage.CONNECT

        async def attempt(cand: Resolved) -> httpcore.AsyncNetworkStream:
            rnd.where = endpoint(cand.address, port)
            rnd.address, rnd.family = cand.address, cand.family
            try:
                return await self._inner.connect_tcp(
                    cand.address, port, local_address=local_address, socket_options=socket_options
                )
            except httpcore.ConnectError as exc:
                raise _root_oserror(exc) from exc

        # The round's own timeout (at rnd.deadline) ends a last attempt that hangs, so the
        # sentence comes from one place; the inner deadline is a little later on purpose.
        inner_deadline = rnd.deadline + _INNER_GRACE_S
        done = await connect_in_order(candidates, port, inner_deadline, attempt, rnd.failures)
        rnd.phases["connect"] = done.connect_s
        rnd.where = endpoint(done.resolved.address, port)
        rnd.address, rnd.family, rnd.fallback = (
            done.resolved.address,
            done.resolved.family,
            done.fallback,
        )
        rnd.stage = _Stage.RESPONSE
        return done.conn

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _Body(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            yield part

    async def aclose(self) -> None:
        await self._stream.aclose()


class _Transport(httpx.AsyncBaseTransport):
    """httpx transport over an httpcore pool that uses :class:`_PolicyBackend`."""

    def __init__(self, rnd: _Round, verify_tls: bool) -> None:
        self._rnd = rnd
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify_tls, trust_env=False),
            network_backend=_PolicyBackend(rnd),
            retries=0,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        self._rnd.new_hop(str(request.url))
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions={**request.extensions, "trace": self._rnd.trace},
        )
        resp = await self._pool.handle_async_request(core)
        return httpx.Response(
            status_code=resp.status,
            headers=resp.headers,
            stream=_Body(resp.stream),
            extensions=resp.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


def _codes_text(codes: list[int]) -> str:
    """Return ``[200..299, 301]`` as ``"200-299, 301"``."""
    spans: list[list[int]] = []
    for code in sorted(set(codes)):
        if spans and code == spans[-1][1] + 1:
            spans[-1][1] = code
        else:
            spans.append([code, code])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)


def _chain(response: httpx.Response) -> list[dict[str, Any]]:
    hops = []
    for r in [*response.history, response]:
        hop: dict[str, Any] = {"status": r.status_code, "url": str(r.url)}
        if r.is_redirect:
            hop["location"] = r.headers.get("location")
        hops.append(hop)
    return hops


def _peer(response: httpx.Response) -> tuple[str, int] | None:
    stream = response.extensions.get("network_stream")
    addr = stream.get_extra_info("server_addr") if stream is not None else None
    if not addr:
        return None
    return str(addr[0]), 6 if ":" in str(addr[0]) else 4


async def _find_keyword(response: httpx.Response, keyword: str) -> tuple[bool, int]:
    """Return ``(found, bytes_read)`` reading at most ``BODY_CAP_BYTES`` of the body."""
    needle, body = keyword.encode(), b""
    async for chunk in response.aiter_bytes():
        body += chunk
        if needle in body:
            return True, len(body)
        if len(body) >= BODY_CAP_BYTES:
            break
    return False, len(body)


def _timeout_sentence(rnd: _Round, timeout_s: float) -> tuple[ProbeStatus, str]:
    within = f"within {seconds_text(timeout_s)} s"
    if rnd.stage is _Stage.RESOLVE:
        return (
            ProbeStatus.ERROR,
            f"DNS resolution of {rnd.host} did not finish {within} at the probe",
        )
    if rnd.stage is _Stage.CONNECT:
        tried = "; then ".join([*rnd.failures, f"no answer from {rnd.where} {within}"])
        return ProbeStatus.DOWN, tried
    if rnd.stage is _Stage.TLS:
        return (
            ProbeStatus.DOWN,
            f"TLS handshake with {rnd.host} at {rnd.where} did not finish {within}",
        )
    if rnd.stage is _Stage.BODY:
        return ProbeStatus.DOWN, f"the response body of {rnd.url} did not arrive {within}"
    return ProbeStatus.DOWN, f"{rnd.url} sent no response {within}"


def _failure(exc: Exception, rnd: _Round) -> tuple[ProbeStatus, str] | None:
    """Map an exception from the request to ``(status, sentence)``; ``None`` if unknown."""
    if isinstance(exc, ResolveError):
        return ProbeStatus.ERROR, str(exc)
    if isinstance(exc, ConnectFailed):
        return exc.status, str(exc)
    if isinstance(exc, httpcore.ConnectError) and rnd.stage is _Stage.TLS:
        cause = exc.__cause__
        reason = getattr(cause, "verify_message", None) or getattr(cause, "reason", None)
        if isinstance(cause, ssl.SSLCertVerificationError):
            reason = f"certificate verify failed: {reason}"
        return ProbeStatus.DOWN, f"TLS handshake with {rnd.host} at {rnd.where} failed: " + (
            str(reason or cause or exc)
        )
    if isinstance(exc, httpx.TooManyRedirects):
        return ProbeStatus.DOWN, f"more than {MAX_REDIRECTS} redirects, the last to {rnd.url}"
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return ProbeStatus.DOWN, f"a redirect led to a URL the probe cannot follow: {exc}"
    if isinstance(exc, httpcore.NetworkError | httpcore.ProtocolError | httpx.HTTPError):
        reason = str(exc) or type(exc).__name__
        return ProbeStatus.DOWN, f"{rnd.url} broke off the HTTP exchange: {reason}"
    return None


async def _judge(
    target: HttpTarget, response: httpx.Response, rnd: _Round, detail: dict[str, Any]
) -> tuple[ProbeStatus, str | None]:
    """Judge the final response: its status, then the keyword; fill ``detail`` as it goes."""
    detail.update(
        status_code=response.status_code,
        final_url=str(response.url),
        redirects=_chain(response),
    )
    if response.status_code not in target.valid_status_codes:
        after = ""
        if response.history:
            hops = len(response.history)
            after = f" after {hops} redirect{'s' * (hops > 1)} from {target.url}"
        return ProbeStatus.DOWN, (
            f"{response.url} answered HTTP {response.status_code} {response.reason_phrase}"
            f"{after}; expected {_codes_text(target.valid_status_codes)}"
        )
    if target.keyword is None:
        return ProbeStatus.UP, None
    rnd.stage = _Stage.BODY
    found, read = await _find_keyword(response, target.keyword)
    detail["body_bytes_read"] = read
    if found:
        return ProbeStatus.UP, None
    return ProbeStatus.DOWN, (
        f"keyword {target.keyword!r} not found in the first {read} bytes of {response.url}"
    )


async def probe_http(target: HttpTarget, ctx: ProbeContext) -> ProbeResult:
    """Request ``target.url`` once and judge the final response.

    UP when the final response's status is in ``valid_status_codes`` and, with ``keyword``,
    its body (first ``BODY_CAP_BYTES``, UTF-8 bytes) contains the keyword. With
    ``follow_redirects`` off the first response is the final one. DOWN for refused,
    unanswered, TLS failures, a wrong status or a missing keyword; ERROR when the probe host
    cannot resolve a host name or open a socket. ``detail``: ``status_code`` (final),
    ``final_url``, ``redirects`` (every response in order: ``status``, ``url``, and
    ``location`` for redirects), ``fallback`` when the preferred family failed. The whole
    round, redirects included, is bounded by ``target.timeout_s``. Never raises.
    """
    started = time.perf_counter()
    try:
        return await _probe(target, started)
    except Exception as exc:  # a bug must not kill the scheduler: report it as ERROR
        return ProbeResult(
            kind=ProbeKind.HTTP,
            status=ProbeStatus.ERROR,
            duration_s=time.perf_counter() - started,
            error=f"internal error in the http probe ({type(exc).__name__}: {exc})",
        )


async def _probe(target: HttpTarget, started: float) -> ProbeResult:
    kind = ProbeKind.HTTP
    if target.keyword is not None and target.method == "HEAD":
        return ProbeResult(
            kind=kind,
            status=ProbeStatus.ERROR,
            duration_s=time.perf_counter() - started,
            error="keyword needs method GET: a HEAD response has no body",
        )
    rnd = _Round(asyncio.get_running_loop().time() + target.timeout_s, target.ip_family)
    client = httpx.AsyncClient(
        transport=_Transport(rnd, target.verify_tls),
        follow_redirects=target.follow_redirects,
        max_redirects=MAX_REDIRECTS,
        timeout=None,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    )
    detail: dict[str, Any] = {}
    try:
        async with asyncio.timeout_at(rnd.deadline):
            request = client.build_request(target.method, target.url)
            response = await client.send(request, stream=True)
            try:
                status, error = await _judge(target, response, rnd, detail)
                peer = _peer(response)
            finally:
                await response.aclose()
    except TimeoutError:
        status, error = _timeout_sentence(rnd, target.timeout_s)
        peer = None
    except Exception as exc:
        mapped = _failure(exc, rnd)
        if mapped is None:
            raise
        (status, error), peer = mapped, None
    finally:
        await client.aclose()
    if rnd.fallback:
        detail["fallback"] = rnd.fallback
    address, family = peer if peer else (rnd.address, rnd.family)
    return ProbeResult(
        kind=kind,
        status=status,
        duration_s=time.perf_counter() - started,
        rtt_s=rnd.rtt_s if status is not ProbeStatus.ERROR else None,
        address=address,
        family=family,
        error=error,
        phases_s=dict(rnd.phases),
        detail=detail,
    )
