"""The HTTP probe against a real ``http.server`` on loopback (plain and TLS)."""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import socket
import socketserver
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from probes.context import ProbeContext
from probes.http import probe_http
from probes.result import ProbeKind, ProbeStatus
from probes.specs import HttpTarget

PAGE = b"<html><body>linkwatch gateway ok</body></html>"
SLOW_SERVER_S = 1.0  # how long /slow waits; probes of it use a 0.3 s timeout


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return

    def _send(self, code: int, body: bytes = b"", location: str | None = None) -> None:
        self.send_response(code)
        if location is not None:
            self.send_header("Location", location)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        routes = {
            "/ok": (200, PAGE, None),
            "/moved": (301, b"", "/missing"),
            "/missing": (404, b"not here", None),
            "/error": (500, b"boom", None),
            "/loop": (302, b"", "/loop"),
        }
        if self.path == "/slow":
            time.sleep(SLOW_SERVER_S)
            self._send(200, PAGE)
        elif self.path in routes:
            self._send(*routes[self.path])
        else:
            self._send(404)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse lookup that for ::1 may
        # go to the configured (off-machine) resolver: skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a probe that gave up
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Server6(_Server):
    address_family = socket.AF_INET6


@contextmanager
def _serve(server: _Server) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    host, port = str(server.server_address[0]), server.server_address[1]
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if isinstance(server.socket, ssl.SSLSocket) else "http"
    try:
        yield f"{scheme}://{shown}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def base_url() -> Iterator[str]:
    with _serve(_Server(("127.0.0.1", 0), _Handler)) as url:
        yield url


@pytest.fixture
def tls_url(tmp_path: Path) -> Iterator[str]:
    crypto = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = crypto.Name([crypto.NameAttribute(crypto.oid.NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        crypto.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(crypto.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            crypto.SubjectAlternativeName(
                [
                    crypto.DNSName("localhost"),
                    crypto.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    with _serve(server) as url:
        yield url


def _target(url: str, **kw: object) -> HttpTarget:
    return HttpTarget.model_validate({"id": "gw-http", "url": url, **kw})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_ok_page_is_up_with_time_to_first_byte_and_phases(base_url: str) -> None:
    result = await probe_http(_target(f"{base_url}/ok"), ProbeContext())
    assert result.kind is ProbeKind.HTTP
    assert result.status is ProbeStatus.UP
    assert result.error is None
    assert result.detail["status_code"] == 200
    assert result.detail["final_url"] == f"{base_url}/ok"
    assert result.detail["redirects"] == [{"status": 200, "url": f"{base_url}/ok"}]
    assert set(result.phases_s) == {"resolve", "connect", "first_byte"}
    assert result.rtt_s is not None and result.rtt_s >= result.phases_s["first_byte"] > 0
    assert (result.address, result.family) == ("127.0.0.1", 4)


async def test_present_keyword_is_up(base_url: str) -> None:
    result = await probe_http(_target(f"{base_url}/ok", keyword="gateway ok"), ProbeContext())
    assert result.status is ProbeStatus.UP
    assert result.detail["body_bytes_read"] == len(PAGE)


async def test_missing_keyword_is_down_naming_the_keyword(base_url: str) -> None:
    result = await probe_http(_target(f"{base_url}/ok", keyword="maintenance"), ProbeContext())
    assert result.status is ProbeStatus.DOWN
    assert result.error == (
        f"keyword 'maintenance' not found in the first {len(PAGE)} bytes of {base_url}/ok"
    )


async def test_redirect_to_404_is_judged_on_the_final_response(base_url: str) -> None:
    # Case C34: 301 then 404 is DOWN with final status 404 and the whole chain recorded.
    result = await probe_http(_target(f"{base_url}/moved"), ProbeContext())
    assert result.status is ProbeStatus.DOWN
    assert result.detail["status_code"] == 404
    assert result.detail["final_url"] == f"{base_url}/missing"
    assert result.detail["redirects"] == [
        {"status": 301, "url": f"{base_url}/moved", "location": "/missing"},
        {"status": 404, "url": f"{base_url}/missing"},
    ]
    assert result.error == (
        f"{base_url}/missing answered HTTP 404 Not Found after 1 redirect from "
        f"{base_url}/moved; expected 200-299"
    )


async def test_unfollowed_redirect_is_judged_on_the_301_itself(base_url: str) -> None:
    # Case C34 with follow_redirects off: the 301 is the final response.
    target = _target(f"{base_url}/moved", follow_redirects=False)
    result = await probe_http(target, ProbeContext())
    assert result.status is ProbeStatus.DOWN
    assert result.detail["status_code"] == 301
    assert [hop["status"] for hop in result.detail["redirects"]] == [301]
    assert result.error == (
        f"{base_url}/moved answered HTTP 301 Moved Permanently; expected 200-299"
    )


async def test_unfollowed_redirect_is_up_when_301_is_an_accepted_code(base_url: str) -> None:
    target = _target(f"{base_url}/moved", follow_redirects=False, valid_status_codes=[301])
    result = await probe_http(target, ProbeContext())
    assert result.status is ProbeStatus.UP


async def test_server_error_is_down(base_url: str) -> None:
    result = await probe_http(_target(f"{base_url}/error"), ProbeContext())
    assert result.status is ProbeStatus.DOWN
    assert result.detail["status_code"] == 500
    assert result.error == (
        f"{base_url}/error answered HTTP 500 Internal Server Error; expected 200-299"
    )


async def test_head_request_is_judged_on_its_status(base_url: str) -> None:
    result = await probe_http(_target(f"{base_url}/ok", method="HEAD"), ProbeContext())
    assert result.status is ProbeStatus.UP


async def test_keyword_with_head_is_a_config_error_not_down(base_url: str) -> None:
    target = _target(f"{base_url}/ok", method="HEAD", keyword="ok")
    result = await probe_http(target, ProbeContext())
    assert result.status is ProbeStatus.ERROR
    assert result.error == "keyword needs method GET: a HEAD response has no body"


async def test_refused_port_is_down() -> None:
    port = _free_port()
    result = await probe_http(_target(f"http://127.0.0.1:{port}/"), ProbeContext())
    assert result.status is ProbeStatus.DOWN
    assert result.error == f"connection refused by 127.0.0.1:{port}"
    assert result.rtt_s is None


async def test_response_slower_than_the_timeout_is_down(base_url: str) -> None:
    result = await probe_http(_target(f"{base_url}/slow", timeout_s=0.3), ProbeContext())
    assert result.status is ProbeStatus.DOWN
    assert result.error == f"{base_url}/slow sent no response within 0.3 s"
    assert result.rtt_s is None


async def test_redirect_loop_is_down(base_url: str) -> None:
    result = await probe_http(_target(f"{base_url}/loop"), ProbeContext())
    assert result.status is ProbeStatus.DOWN
    assert result.error == f"more than 10 redirects, the last to {base_url}/loop"


async def test_literal_of_a_forbidden_family_is_error_not_down(base_url: str) -> None:
    result = await probe_http(_target(f"{base_url}/ok", ip_family="ipv6"), ProbeContext())
    assert result.status is ProbeStatus.ERROR
    assert result.error == "127.0.0.1 is an IPv4 address but ip_family is ipv6"


async def test_name_is_resolved_by_the_policy_and_the_address_recorded(base_url: str) -> None:
    port = base_url.rsplit(":", 1)[1]
    target = _target(f"http://localhost:{port}/ok", ip_family="ipv4")
    result = await probe_http(target, ProbeContext())
    assert result.status is ProbeStatus.UP
    assert (result.address, result.family) == ("127.0.0.1", 4)
    assert "resolve" in result.phases_s


async def test_ipv6_literal_url_records_family_6() -> None:
    try:
        server = _Server6(("::1", 0), _Handler)
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    with _serve(server) as url:
        result = await probe_http(_target(f"{url}/ok"), ProbeContext())
        assert result.status is ProbeStatus.UP
        assert (result.address, result.family) == ("::1", 6)


async def test_untrusted_certificate_is_down_naming_the_tls_failure(tls_url: str) -> None:
    result = await probe_http(_target(f"{tls_url}/ok"), ProbeContext())
    assert result.status is ProbeStatus.DOWN
    assert result.error is not None
    assert result.error.startswith("TLS handshake with 127.0.0.1 at 127.0.0.1:")
    assert "certificate verify failed" in result.error


async def test_unverified_tls_is_up_with_a_tls_phase(tls_url: str) -> None:
    target = _target(f"{tls_url}/ok", verify_tls=False, keyword="gateway ok")
    result = await probe_http(target, ProbeContext())
    assert result.status is ProbeStatus.UP
    assert result.phases_s["tls"] > 0


async def test_silent_host_is_down_with_no_answer_within_the_timeout() -> None:
    # Backlog 0 plus one unaccepted connection: Linux drops the probe's SYNs.
    with socket.socket() as server, socket.socket() as filler:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        filler.settimeout(2.0)
        filler.connect(("127.0.0.1", port))
        target = _target(f"http://127.0.0.1:{port}/", timeout_s=0.3)
        result = await probe_http(target, ProbeContext())
    assert result.status is ProbeStatus.DOWN
    assert result.error == f"no answer from 127.0.0.1:{port} within 0.3 s"


async def test_tls_handshake_that_never_finishes_is_down_naming_tls() -> None:
    # The kernel accepts the TCP connection; nobody ever answers the ClientHello.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        target = _target(f"https://127.0.0.1:{port}/", timeout_s=0.3)
        result = await probe_http(target, ProbeContext())
    assert result.status is ProbeStatus.DOWN
    assert result.error == (
        f"TLS handshake with 127.0.0.1 at 127.0.0.1:{port} did not finish within 0.3 s"
    )
    assert "connect" in result.phases_s
