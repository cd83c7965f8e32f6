"""Security checks in one place, each against the real thing: the `flowhook gateway` command started as
a subprocess (no host configured, Prefect pointed at a closed loopback port so nothing leaves the
machine), raw sockets, /proc, the files it writes, and the CLI. Nothing of flowhook's is mocked.

Here:

1. **Loopback only.** `test_the_gateway_listens_on_loopback_only`: the one LISTEN socket on the
   gateway's port, in /proc/net/tcp and tcp6, belongs to the process started and is 127.0.0.1
   (`0100007F`), not 0.0.0.0 or `::`. `test_the_host_setting_defaults_to_loopback`.
2. **Secrets never leak.** One gateway run (`delivered`) with sources whose secrets are managed
   (`data/secrets/`), `env:` and `file:` referenced, and one whose variable is unset; it receives valid,
   forged, unsigned, badly signed, invalid-JSON, schema-violating, unknown-type and over-limit
   deliveries (Content-Length and chunked) and fails to reach Prefect. No secret it knows — whole, the
   base64 after `whsec_`, the key bytes, their hex — is in its captured stdout/stderr, in any file under
   the run's folder but the secret store (spool batches, quarantine entries, the DuckDB file, logs), in
   any answer, in `flowhook status`, `report --json` or `quarantine list --json`, or in the report's
   Markdown, table and JSON artifacts. `flowhook secret show` is the one output that has it (the
   control that the search would find it), and the store is private (0600 files in a 0700 folder).
3. **Bodies over the limit are refused before they are read whole.** A chunked POST streaming 64 KiB
   chunks towards 50 MB gets its 413 after a few hundred KB, with the gateway's RSS flat; a
   `Content-Length` over the limit gets its 413 from the header alone, no body sent.
4. **Header sections are bounded** (`test_an_endless_header_section_is_cut_off`): a request that never
   ends its headers gets a 431 after 64 KiB (`flowhook.gateway.http`), with the gateway's RSS flat.

Elsewhere, not repeated here:

- `/reports/{name}` serves nothing outside `data/reports` (traversal, encoded and doubled separators):
  tests/gateway/test_reports_route.py.
- Timestamps outside the tolerance are refused per scheme (tests/gateway/test_schemes.py::
  test_a_stale_or_future_timestamp_is_refused) and by the live gateway (tests/gateway/test_app.py::
  test_a_bad_signature_is_401_and_nothing_is_spooled); tampered bodies and signed headers, wrong and
  rotated-out secrets: tests/gateway/test_schemes.py, tests/gateway/test_ingress_limits.py.
- 413 by Content-Length, 429, a 503 `secret_unavailable` that names no other secret, quarantine dropping
  `authorization`/`cookie`: tests/gateway/test_ingress_limits.py.
- Managed secret files made 0600 in a 0700 folder by the store itself: tests/gateway/test_secrets.py.
- Never a 5xx, every error JSON, whatever arrives: tests/gateway/test_fuzz.py (schemathesis).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import select
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from flowhook.cli import app
from flowhook.gateway.schemes import generate_secret, sign
from flowhook.gateway.secrets import signing_secret
from flowhook.metrics import Window, to_json_dict, to_markdown, to_table_rows
from flowhook.reporting import window_report
from flowhook.settings import Settings, get_settings
from flowhook.sources.webhook import SignatureConfig, SourceConfig
from flowhook.spool import Spool, State
from flowhook.stack import free_port
from flowhook.store import DuckDBStore, StoredEvent

LIMIT = 100_000  # FLOWHOOK_MAX_BODY_BYTES of every gateway started here
MB = 1024 * 1024
RSS_GROWTH = 20 * MB  # the most a refused request may add to the gateway's resident memory
REFUSED_WITHIN = 1_000_000  # bytes a client may have sent by the time its refusal arrives


# --- the real `flowhook gateway` in a subprocess ------------------------------------------------------------


@dataclass
class GatewayProcess:
    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    logs: list[Path]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss(self) -> int:
        """Resident memory in bytes, from /proc/<pid>/status."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line")


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:] if path.exists() else ""


@contextlib.contextmanager
def gateway_process(root: Path, **env: str) -> Iterator[GatewayProcess]:
    """`python -m flowhook gateway` with its data under `root/data`, stdout/stderr in `data/logs/`; stopped by PID."""
    data_dir = root / "data"
    logs = data_dir / "logs"
    logs.mkdir(parents=True)
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWHOOK_", "PREFECT_"))}
    environment.update(
        FLOWHOOK_DATA_DIR=str(data_dir),
        FLOWHOOK_GATEWAY_PORT=str(port),
        FLOWHOOK_PREFECT_API_URL=f"http://127.0.0.1:{free_port()}/api",  # nothing listens there
        FLOWHOOK_MAX_BODY_BYTES=str(LIMIT),
        PREFECT_HOME=str(root / "prefect"),
        PYTHONUNBUFFERED="1",
        **env,
    )
    out, err = logs / "gateway.out", logs / "gateway.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "flowhook", "gateway"], cwd=root, env=environment, stdout=stdout, stderr=stderr
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the gateway exited with {process.returncode}:\n{_tail(err)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not answer /health within 60 s:\n{_tail(err)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        yield GatewayProcess(process, port, data_dir, [out, err])
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A gateway as started with no host configured, its default sources (`demo`, managed secret) and LIMIT."""
    with gateway_process(tmp_path_factory.mktemp("gateway")) as started:
        yield started


# --- 1. loopback only -----------------------------------------------------------------------------------------


def _listeners(port: int) -> list[tuple[str, str, int]]:
    """(table, local address in hex, inode) of every LISTEN socket on `port`."""
    found = []
    for table in ("tcp", "tcp6"):
        path = Path("/proc/net") / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] == "0A" and int(port_hex, 16) == port:
                found.append((table, address, int(fields[9])))
    return found


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(int(target.removeprefix("socket:[").removesuffix("]")))
    return inodes


def test_the_gateway_listens_on_loopback_only(gateway: GatewayProcess) -> None:
    listeners = _listeners(gateway.port)
    owned = _socket_inodes(gateway.process.pid)
    assert [(table, address) for table, address, _ in listeners] == [("tcp", "0100007F")], listeners
    assert listeners[0][2] in owned  # the gateway's own socket, not something else on the port


def test_the_host_setting_defaults_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWHOOK_GATEWAY_HOST", raising=False)
    assert Settings.model_fields["gateway_host"].default == "127.0.0.1"
    assert Settings().gateway_host == "127.0.0.1"


# --- 2. secrets never leak ------------------------------------------------------------------------------------

SHOP_SECRET = generate_secret(SignatureConfig())
PARTNER_SECRET = generate_secret(SignatureConfig(scheme="github"))
SIGNATURE_HEADER = {"standard": "webhook-signature", "github": "X-Hub-Signature-256"}


def _sources_yaml(secret_file: Path) -> str:
    return (
        "sources:\n"
        "  managed: {}\n"
        "  shop:\n"
        "    secret: env:SECURITY_SHOP_SECRET\n"
        "  partner:\n"
        "    signature: {scheme: github}\n"
        f"    secret: file:{secret_file}\n"
        "  vault:\n"
        "    secret: env:SECURITY_UNSET_SECRET\n"
    )


@dataclass
class Run:
    """What one gateway run saw and left behind."""

    root: Path
    data_dir: Path
    sources_file: Path
    allowed: list[Path]  # the only files a secret may be in: the store and the referenced file
    logs: list[Path]
    secrets: dict[str, str] = field(default_factory=dict)  # label -> secret
    answers: list[tuple[str, int, str]] = field(default_factory=list)  # (what was sent, status, the whole answer)


def _settings(run: Run) -> Settings:
    """The run's settings as the gateway saw them, whatever FLOWHOOK_* this process has."""
    return Settings(data_dir=run.data_dir, sources_file=run.sources_file, webhook_secret=None, duckdb_path=None)


def _item(user_id: str = "u1", **data: Any) -> dict[str, Any]:
    return {"type": "user_request", "data": {"user_id": user_id, "action": "search", **data}}


def _signed(config: SourceConfig, body: bytes, secret: str, msg_id: str) -> dict[str, str]:
    return {**sign(config.signature, body, secret, msg_id=msg_id), "content-type": "application/json"}


Delivery = tuple[str, bytes | Iterator[bytes], dict[str, str]]


def _deliveries(name: str, config: SourceConfig, secret: str) -> Iterator[Delivery]:
    """(label, body, headers) of every kind of delivery, each one a different path through the gateway."""
    valid = orjson.dumps([_item(), _item("u2")])
    yield "valid", valid, _signed(config, valid, secret, f"{name}-valid")
    other = generate_secret(config.signature)
    yield "forged", valid, _signed(config, valid, other, f"{name}-forged")
    yield "unsigned", valid, {"content-type": "application/json"}
    garbled = _signed(config, valid, secret, f"{name}-garbled")
    header = SIGNATURE_HEADER[config.signature.scheme]
    garbled[header] = garbled[header][:-4] + "!!!!"
    yield "garbled signature", valid, garbled
    broken = b'{"type": "user_request", "data": {"user_id": '
    yield "invalid json", broken, _signed(config, broken, secret, f"{name}-broken")
    violating = orjson.dumps({"type": "user_request", "data": {"action": "search"}})
    yield "schema violation", violating, _signed(config, violating, secret, f"{name}-violating")
    unknown = orjson.dumps({"type": "no_such_type", "data": {}})
    yield "unknown type", unknown, _signed(config, unknown, secret, f"{name}-unknown")
    big = orjson.dumps(_item(path="x" * (LIMIT + 1000)))
    yield "over the limit", big, _signed(config, big, secret, f"{name}-big")
    yield "over the limit, chunked", iter([big[:50_000], big[50_000:]]), _signed(config, big, secret, f"{name}-big2")


def _answer(response: httpx.Response) -> str:
    return f"{response.status_code} {list(response.headers.items())}\n{response.text}"


EXPECTED = {
    "valid": 202,
    "forged": 401,
    "unsigned": 401,
    "garbled signature": 401,
    "invalid json": 400,
    "schema violation": 422,
    "unknown type": 422,
    "over the limit": 413,
    "over the limit, chunked": 413,
}


@pytest.fixture(scope="module")
def delivered(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One gateway run that saw every kind of delivery, then a DuckDB file holding the events it accepted."""
    root = tmp_path_factory.mktemp("secrets-run")
    secret_file = root / "partner.secret"
    secret_file.write_text(PARTNER_SECRET + "\n")
    sources_file = root / "sources.yaml"
    sources_file.write_text(_sources_yaml(secret_file))
    data_dir = root / "data"
    run = Run(root, data_dir, sources_file, [data_dir / "secrets", secret_file], [])
    env = {"FLOWHOOK_SOURCES_FILE": str(sources_file), "SECURITY_SHOP_SECRET": SHOP_SECRET}
    with gateway_process(root, **env) as gateway:
        run.logs = gateway.logs
        settings = _settings(run)
        configs = settings.source_configs()
        managed = signing_secret(settings, "managed")  # made by the gateway at startup
        senders = {"managed": managed, "shop": SHOP_SECRET, "partner": PARTNER_SECRET}
        with httpx.Client(base_url=gateway.url, timeout=10) as client:
            for name, secret in senders.items():
                for label, body, headers in _deliveries(name, configs[name], secret):
                    response = client.post(f"/hooks/{name}", content=body, headers=headers)
                    run.answers.append((f"{name}: {label}", response.status_code, _answer(response)))
            body = orjson.dumps(_item())
            headers = _signed(configs["vault"], body, SHOP_SECRET, "msg_vault")
            response = client.post("/hooks/vault", content=body, headers=headers)
            run.answers.append(("vault: secret unset", response.status_code, _answer(response)))
            deadline = time.monotonic() + 20  # let the forwarder fail to reach Prefect, and log it
            while client.get("/health").json()["forward_failures"] == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
    for path in sorted((data_dir / "secrets").glob("*.json")):
        state = json.loads(path.read_text())
        run.secrets[f"{path.stem} (managed)"] = state["current"]
        for n, previous in enumerate(state.get("previous", [])):
            run.secrets[f"{path.stem} (managed, previous {n})"] = previous["secret"]
    run.secrets |= {"shop (env:)": SHOP_SECRET, "partner (file:)": PARTNER_SECRET}
    _store_spooled_events(settings)
    return run


def _store_spooled_events(settings: Settings) -> None:
    """Store what the gateway spooled, as a worker run would, so reports have the sources' events."""
    spool = Spool(settings.spool_dir)
    events = [e for state in State for path in (spool.root / state.value).glob("*.jsonl") for e in spool.read(path)]
    now = datetime.now(UTC)
    rows = [
        StoredEvent(
            id=e.id,
            type=e.type,
            source=e.source,
            occurred=e.occurred,
            received=e.received,
            emitted=e.received,
            started=now,
            stored=now,
            batch_id="security",
            flow_run_id="security-run",
            status="ok",
            error=None,
            data=e.data,
            result=None,
        )
        for e in events
    ]
    DuckDBStore(settings.database).write_events(rows, stored=now)


def _forms(secret: str) -> dict[str, bytes]:
    """Every way a secret could be written down: whole, the base64 after `whsec_`, its key bytes and their hex."""
    forms = {"whole": secret.encode(), "after whsec_": secret.removeprefix("whsec_").encode()}
    if secret.startswith("whsec_"):
        with contextlib.suppress(binascii.Error, ValueError):
            key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
            forms |= {"key bytes": key, "key hex": key.hex().encode()}
    return forms


def _found(run: Run, content: bytes) -> list[str]:
    return [
        f"{label}, {form}"
        for label, secret in run.secrets.items()
        for form, needle in _forms(secret).items()
        if needle in content
    ]


def _files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def test_the_run_took_every_path_it_means_to_check(delivered: Run) -> None:
    statuses = {label: status for label, status, _ in delivered.answers}
    for source in ("managed", "shop", "partner"):
        assert {label: statuses[f"{source}: {label}"] for label in EXPECTED} == EXPECTED, source
    assert statuses["vault: secret unset"] == 503
    # Every sender's secret, the local producers' managed ones, and each spool and quarantine file exist.
    assert {"managed (managed)", "emit (managed)", "shop (env:)", "partner (file:)"} <= set(delivered.secrets)
    assert len(list((delivered.data_dir / "quarantine").glob("*.json"))) == 9  # 3 per source: 400, 422, 422
    assert list((delivered.data_dir / "spool").rglob("*.jsonl"))
    assert DuckDBStore(delivered.data_dir / "flowhook.duckdb").count_events() == 6


def test_the_search_finds_the_secrets_where_they_are_kept(delivered: Run) -> None:
    store = delivered.data_dir / "secrets"
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    for path in store.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert "managed (managed), whole" in _found(delivered, (store / "managed.json").read_bytes())
    assert "partner (file:), whole" in _found(delivered, delivered.allowed[1].read_bytes())


def test_no_secret_in_the_gateway_logs(delivered: Run) -> None:
    stderr = delivered.logs[1].read_text()
    assert "secret in" in stderr and "cannot reach Prefect" in stderr  # the logs did capture the run
    assert "SECURITY_UNSET_SECRET" in stderr  # and its unavailable secret, by name only
    for log in delivered.logs:
        assert _found(delivered, log.read_bytes()) == [], log


def test_no_secret_in_any_file_but_the_secret_store(delivered: Run) -> None:
    files = [p for p in _files(delivered.root) if not any(p.is_relative_to(a) for a in delivered.allowed)]
    assert any(p.suffix == ".jsonl" for p in files) and any("quarantine" in p.parts for p in files)
    leaks = {
        str(path.relative_to(delivered.root)): hits for path in files if (hits := _found(delivered, path.read_bytes()))
    }
    assert leaks == {}


def test_no_secret_in_any_answer(delivered: Run) -> None:
    for label, _, answer in delivered.answers:
        assert _found(delivered, answer.encode()) == [], label


@pytest.fixture
def cli(delivered: Run, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """Run a `flowhook` command on the run's data folder; its output."""
    monkeypatch.setenv("FLOWHOOK_DATA_DIR", str(delivered.data_dir))
    monkeypatch.setenv("FLOWHOOK_SOURCES_FILE", str(delivered.sources_file))
    monkeypatch.setenv("SECURITY_SHOP_SECRET", SHOP_SECRET)
    monkeypatch.setenv("FLOWHOOK_PREFECT_API_URL", f"http://127.0.0.1:{free_port()}/api")
    monkeypatch.delenv("FLOWHOOK_WEBHOOK_SECRET", raising=False)
    monkeypatch.delenv("FLOWHOOK_DUCKDB_PATH", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    yield invoke
    get_settings.cache_clear()


def test_secret_show_is_the_one_command_that_prints_a_secret(delivered: Run, cli: Callable[..., str]) -> None:
    assert cli("secret", "show", "managed").strip() == delivered.secrets["managed (managed)"]
    assert cli("secret", "show", "shop").strip() == SHOP_SECRET
    status = cli("status")
    assert "events stored per type" in status
    report = cli("report", "--json", "--minutes", "60")
    assert sum(row["n"] for row in json.loads(report)["rows"] if row["event_type"] != "all") == 6
    listed = cli("quarantine", "list", "--json")
    assert len(json.loads(listed)) == 9
    for name, output in (("status", status), ("report --json", report), ("quarantine list --json", listed)):
        assert _found(delivered, output.encode()) == [], name


def test_report_artifacts_hold_no_secret(delivered: Run) -> None:
    settings = _settings(delivered)
    now = datetime.now(UTC)
    report = window_report(
        DuckDBStore(settings.database),
        Spool(settings.spool_dir),
        Window(now - timedelta(hours=1), now, 60.0),
        target_p99_seconds=30.0,
        now=now,
    )
    markdown = to_markdown(report, chart_url="http://127.0.0.1:8000/reports/chart.png")
    table = json.dumps(to_table_rows(report))
    document = json.dumps(to_json_dict(report))
    assert "user_request" in markdown and "user_request" in table and "user_request" in document
    for name, artifact in (("markdown", markdown), ("table", table), ("json", document)):
        assert _found(delivered, artifact.encode()) == [], name


# --- 3. and 4. oversized requests are cut off, not read whole --------------------------------------------------


@dataclass
class Streamed:
    sent: int  # bytes the kernel took from us, head included: an upper bound on what the gateway read
    answer: bytes  # what came back before we stopped (the status line and headers, at least, if any)
    ended: str  # "answered", "closed" or "sent all"
    rss_growth: int  # the gateway's highest resident memory while streaming, over its value before


def _stream(gateway: GatewayProcess, head: bytes, piece: bytes, total: int) -> Streamed:
    """Send `head`, then `piece` again and again up to `total` bytes, until the gateway answers or hangs up."""
    baseline = peak = gateway.rss()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)  # what we count as sent is near what it read
    with sock:
        sock.connect(("127.0.0.1", gateway.port))
        sock.setblocking(False)
        pending, sent, answer, ended = head, 0, b"", "sent all"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not pending and sent < total:
                pending = piece
            readable, writable, _ = select.select([sock], [sock] if pending else [], [], 0.05 if pending else 2.0)
            peak = max(peak, gateway.rss())
            if readable:
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    ended = "closed"
                    break
                if not data:
                    ended = "closed"
                    break
                answer += data
                if b"\r\n\r\n" in answer:
                    ended = "answered"
                    break
            elif writable:
                try:
                    n = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    ended = "closed"
                    break
                pending, sent = pending[n:], sent + n
            elif not pending:
                break  # everything sent, and nothing came back for 2 s
        answer += _rest_of_answer(sock, answer) if ended == "answered" else b""
    return Streamed(sent, answer, ended, max(peak, gateway.rss()) - baseline)


def _rest_of_answer(sock: socket.socket, answer: bytes) -> bytes:
    """The body after the headers already in `answer`, as far as Content-Length says."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lengths = [line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    missing = int(lengths[0]) - len(body) if lengths else 0
    rest = b""
    sock.setblocking(True)
    sock.settimeout(5)
    with contextlib.suppress(OSError):
        while len(rest) < missing and (data := sock.recv(65536)):
            rest += data
    return rest


def _refusal(answer: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, orjson.loads(body)


CHUNK = 64 * 1024
POST = b"POST /hooks/demo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


def test_a_chunked_body_over_the_limit_is_refused_before_it_is_read_whole(gateway: GatewayProcess) -> None:
    frame = b"%x\r\n" % CHUNK + b"a" * CHUNK + b"\r\n"
    streamed = _stream(gateway, POST + b"Transfer-Encoding: chunked\r\n\r\n", frame, 50_000_000)
    assert streamed.ended == "answered", streamed
    status, payload = _refusal(streamed.answer)
    assert (status, payload["code"]) == (413, "body_too_large")
    assert streamed.sent < REFUSED_WITHIN
    assert streamed.rss_growth < RSS_GROWTH
    assert httpx.get(f"{gateway.url}/health", timeout=5).status_code == 200


def test_a_content_length_over_the_limit_is_refused_from_the_header_alone(gateway: GatewayProcess) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(POST + b"Content-Length: 50000000\r\n\r\n")  # and not one byte of body
        answer = b""
        while b"\r\n\r\n" not in answer and (data := sock.recv(65536)):
            answer += data
        answer += _rest_of_answer(sock, answer)
    status, payload = _refusal(answer)
    assert (status, payload["code"]) == (413, "body_too_large")


def test_an_endless_header_section_is_cut_off(gateway: GatewayProcess) -> None:
    # Last in the module: a gateway with this bug keeps what it read until it is stopped.
    header = b"X-Padding: " + b"a" * 8000 + b"\r\n"
    streamed = _stream(gateway, b"POST /hooks/demo HTTP/1.1\r\nHost: 127.0.0.1\r\n", header, 64_000_000)
    assert streamed.ended in ("answered", "closed"), (
        f"{streamed.sent:,} bytes of headers sent without an answer; RSS grew {streamed.rss_growth / MB:.0f} MB"
    )
    assert streamed.sent < REFUSED_WITHIN
    assert streamed.rss_growth < RSS_GROWTH
