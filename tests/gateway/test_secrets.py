"""SecretStore on real files and environment variables: references, managed secrets and rotation."""

from __future__ import annotations

import hashlib
import hmac
import json
import stat
import threading
from pathlib import Path

import httpx
import pytest

from flowhook.gateway.schemes import generate_secret, sign
from flowhook.gateway.secrets import REFERENCE_TTL, SecretStore, SecretUnavailable
from flowhook.settings import Settings
from flowhook.sources.webhook import SignatureConfig, SourceConfig, load_sources
from flowhook.stack import free_port
from tests.conftest import ROOT
from tests.servers import prefect_server, serve

GRACE = 3600.0
T0 = 1_714_557_600.0


def make_store(root: Path, *, grace: float = GRACE, default: str | None = None) -> SecretStore:
    return SecretStore(root, grace_seconds=grace, default=default, generate=lambda c: generate_secret(c.signature))


def reference(secret: str) -> SourceConfig:
    return SourceConfig(secret=secret)


# --- references -------------------------------------------------------------------------------------------


GITHUB = SignatureConfig(scheme="github")
# GitHub's documented example secret: one secret, with spaces and a quote.
EVERYBODY = "It's a Secret to Everybody"


@pytest.mark.parametrize("value", [EVERYBODY, "new,old", " padded ", 'say "cheese"', "tab\there"])
def test_an_env_reference_is_one_secret_whatever_it_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SHOP_WEBHOOK_SECRET", value)
    config = SourceConfig(signature=GITHUB, secret="env:SHOP_WEBHOOK_SECRET")
    assert make_store(tmp_path).secrets("shop", config) == [value]


@pytest.mark.parametrize(("text", "secret"), [(EVERYBODY + "\n", EVERYBODY), ("a b\r\n", "a b"), ("s1\ns0", "s1\ns0")])
def test_a_file_reference_is_its_text_without_the_trailing_newline(tmp_path: Path, text: str, secret: str) -> None:
    path = tmp_path / "shop.secret"
    path.write_bytes(text.encode())
    config = SourceConfig(signature=GITHUB, secret=f"file:{path}")
    assert make_store(tmp_path / "secrets").secrets("shop", config) == [secret]


def test_several_secrets_are_a_list_of_references_newest_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEW_SECRET", "new one")
    (tmp_path / "old.secret").write_text("old, older\n")
    config = SourceConfig(signature=GITHUB, secret=["env:NEW_SECRET", f"file:{tmp_path / 'old.secret'}"])
    assert make_store(tmp_path / "secrets").secrets("shop", config) == ["new one", "old, older"]


def test_standard_webhooks_alone_reads_whitespace_separated_whsec_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new, old = generate_secret(SignatureConfig()), generate_secret(SignatureConfig())
    monkeypatch.setenv("SHOP_WEBHOOK_SECRET", f" {new}\n{old} ")
    assert make_store(tmp_path).secrets("shop", reference("env:SHOP_WEBHOOK_SECRET")) == [new, old]

    # Words that are not whsec_ keys are not split: the value is refused whole, and not echoed.
    monkeypatch.setenv("OTHER_SECRET", f"{new} and more")
    with pytest.raises(SecretUnavailable, match="whsec_` keys separated by whitespace") as caught:
        make_store(tmp_path).secrets("other", reference("env:OTHER_SECRET"))
    assert new not in str(caught.value)
    monkeypatch.setenv("OTHER_SECRET", f"{new},{old}")  # a comma is no separator: not base64 either
    with pytest.raises(SecretUnavailable, match="not usable: a Standard Webhooks secret is"):
        make_store(tmp_path).secrets("other", reference("env:OTHER_SECRET"))


def test_a_file_reference_is_read_again_after_the_ttl(tmp_path: Path) -> None:
    path = tmp_path / "shop.secret"
    path.write_text("s1\n")
    store = make_store(tmp_path / "secrets")
    config = SourceConfig(signature=GITHUB, secret=f"file:{path}")
    assert store.secrets("shop", config, now=T0) == ["s1"]

    path.write_text("s2\n")  # rotated where the secret lives
    assert store.secrets("shop", config, now=T0 + REFERENCE_TTL - 1) == ["s1"]
    assert store.secrets("shop", config, now=T0 + REFERENCE_TTL + 1) == ["s2"]
    assert not (tmp_path / "secrets").exists()  # a referenced secret is never copied into the store


def test_an_unset_variable_is_unavailable_and_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOP_WEBHOOK_SECRET", raising=False)
    with pytest.raises(SecretUnavailable, match="SHOP_WEBHOOK_SECRET") as caught:
        make_store(tmp_path).secrets("shop", reference("env:SHOP_WEBHOOK_SECRET"))
    assert "'shop'" in str(caught.value)


def test_a_missing_file_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(SecretUnavailable, match="cannot read the secret file of source 'shop'"):
        make_store(tmp_path).secrets("shop", reference(f"file:{tmp_path / 'nowhere.secret'}"))


def test_a_block_without_a_reachable_prefect_server_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api_url = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there: fails at once
    monkeypatch.setenv("PREFECT_API_URL", api_url)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    # Prefect reads its environment once, on import; another test may have imported it already.
    with (
        temporary_settings(updates={PREFECT_API_URL: api_url}),
        pytest.raises(SecretUnavailable, match="Prefect Secret block 'shop-webhook'"),
    ):
        make_store(tmp_path).secrets("shop", reference("block:shop-webhook"))


@pytest.mark.parametrize(
    "secret",
    [
        "vault:whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # a reference kind flowhook does not know
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # the secret itself pasted where its reference belongs
    ],
)
def test_an_unknown_reference_is_unavailable_without_echoing_it(tmp_path: Path, secret: str) -> None:
    with pytest.raises(SecretUnavailable, match="must start with env:, file: or block:") as caught:
        make_store(tmp_path).secrets("shop", reference(secret))
    assert "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" not in str(caught.value)


@pytest.mark.parametrize("kind", ["env", "file"])
def test_a_reference_to_blank_text_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    monkeypatch.setenv("SHOP_WEBHOOK_SECRET", "  ")
    (tmp_path / "shop.secret").write_text("\n")
    target = "env:SHOP_WEBHOOK_SECRET" if kind == "env" else f"file:{tmp_path / 'shop.secret'}"
    with pytest.raises(SecretUnavailable):
        make_store(tmp_path / "secrets").secrets("shop", reference(target))


def test_the_shared_default_secret_serves_sources_that_name_none_by_the_same_rule(tmp_path: Path) -> None:
    new, old = generate_secret(SignatureConfig()), generate_secret(SignatureConfig())
    store = make_store(tmp_path / "secrets", default=f"{new} {old}")
    assert store.secrets("shop", SourceConfig()) == [new, old]  # Standard Webhooks: two whsec_ keys
    assert make_store(tmp_path / "secrets", default=EVERYBODY).secrets("gh", SourceConfig(signature=GITHUB)) == [
        EVERYBODY
    ]
    assert not (tmp_path / "secrets").exists()


@pytest.mark.parametrize("secret", ["", []])
def test_an_empty_reference_is_a_configuration_error(secret: str | list[str]) -> None:
    with pytest.raises(ValueError, match="none empty"):
        SourceConfig(secret=secret)


# --- managed secrets ----------------------------------------------------------------------------------------


def test_a_managed_secret_is_made_on_first_use_private_and_stable(tmp_path: Path) -> None:
    root = tmp_path / "secrets"
    store = make_store(root)
    [secret] = store.secrets("github", SourceConfig(signature=SignatureConfig(scheme="github")))
    assert len(secret) >= 32
    assert not secret.startswith("whsec_")  # GitHub's form, not Standard Webhooks'

    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    path = store.path("github")
    assert path == root / "github.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["current"] == secret
    assert sorted(p.name for p in root.iterdir()) == [".create.lock", "github.json"]  # no temporary file left

    config = SourceConfig(signature=SignatureConfig(scheme="github"))
    assert store.secrets("github", config) == [secret]
    assert make_store(root).secrets("github", config) == [secret]  # another process reads the same
    [demo] = store.secrets("demo", SourceConfig())
    assert demo.startswith("whsec_")
    assert demo != secret


def test_rotate_keeps_the_old_secret_until_it_expires(tmp_path: Path) -> None:
    config = SourceConfig()
    store = make_store(tmp_path)
    [s0] = store.secrets("demo", config, now=T0)

    s1 = store.rotate("demo", config, now=T0 + 10)
    assert s1 != s0
    assert store.secrets("demo", config, now=T0 + 11) == [s1, s0]
    assert make_store(tmp_path).secrets("demo", config, now=T0 + 11) == [s1, s0]
    assert store.secrets("demo", config, now=T0 + 10 + GRACE - 1) == [s1, s0]
    assert store.secrets("demo", config, now=T0 + 10 + GRACE + 1) == [s1]

    s2 = store.rotate("demo", config, now=T0 + 20)
    assert store.secrets("demo", config, now=T0 + 21) == [s2, s1, s0]
    s3 = store.rotate("demo", config, now=T0 + 10 + GRACE + 5)  # s0 has expired by now: dropped from the file
    assert store.secrets("demo", config, now=T0 + 10 + GRACE + 6) == [s3, s2, s1]
    assert [p["secret"] for p in json.loads(store.path("demo").read_text())["previous"]] == [s2, s1]


def test_with_no_grace_a_rotated_out_secret_is_refused_at_once(tmp_path: Path) -> None:
    config = SourceConfig()
    store = make_store(tmp_path, grace=0)
    store.secrets("demo", config, now=T0)
    new = store.rotate("demo", config, now=T0 + 10)
    assert store.secrets("demo", config, now=T0 + 10.001) == [new]


def test_rotating_a_referenced_secret_raises_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_abc")
    config = SourceConfig(signature=SignatureConfig(scheme="stripe"), secret="env:STRIPE_WEBHOOK_SECRET")
    store = make_store(tmp_path / "secrets")
    with pytest.raises(SecretUnavailable, match="env:STRIPE_WEBHOOK_SECRET: rotate it there") as caught:
        store.rotate("stripe", config)
    assert "whsec_abc" not in str(caught.value)
    assert not (tmp_path / "secrets").exists()
    assert store.secrets("stripe", config) == ["whsec_abc"]


# --- through the gateway: GitHub's documented example -------------------------------------------------------

# https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries#testing-the-webhook-payload-validation
HELLO = b"Hello, World!"
DOCUMENTED = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def deliver(client: httpx.Client, signature: str) -> httpx.Response:
    """GitHub's example payload to the github source, as a ping (its template maps a ping to no event)."""
    headers = {"content-type": "application/json", "x-github-event": "ping", "x-hub-signature-256": signature}
    return client.post("/hooks/github", content=HELLO, headers=headers)


def test_githubs_documented_signature_is_the_hmac_of_its_example() -> None:
    digest = hmac.new(EVERYBODY.encode(), HELLO, hashlib.sha256).hexdigest()
    assert f"sha256={digest}" == DOCUMENTED
    assert sign(GITHUB, HELLO, EVERYBODY, msg_id="d1")["X-Hub-Signature-256"] == DOCUMENTED


@pytest.mark.parametrize("given", ["env", "file", "list", "default"])
def test_githubs_example_secret_is_one_secret_through_the_gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    monkeypatch.setenv("GITHUB_SECRET", EVERYBODY)
    (tmp_path / "github.secret").write_text(EVERYBODY + "\n")
    (tmp_path / "old.secret").write_text("the old one, until senders switch\n")
    secret: str | list[str] | None = {
        "env": "env:GITHUB_SECRET",
        "file": f"file:{tmp_path / 'github.secret'}",
        "list": ["env:GITHUB_SECRET", f"file:{tmp_path / 'old.secret'}"],
        "default": None,
    }[given]
    config = load_sources(ROOT / "sources.yaml")["github"].model_copy(update={"secret": secret})
    extra = {"webhook_secret": EVERYBODY} if given == "default" else {}

    options = Settings(data_dir=tmp_path / "data", sources={"github": config}, **extra)
    with serve(options) as client:
        accepted = deliver(client, DOCUMENTED)
        assert accepted.status_code == 202, accepted.text
        assert accepted.json() == {"accepted": 0, "ids": []}
        if given == "list":
            old = sign(GITHUB, HELLO, "the old one, until senders switch", msg_id="d2")["X-Hub-Signature-256"]
            assert deliver(client, old).status_code == 202

        for word in [*EVERYBODY.split(), "the", "old"]:
            forged = "sha256=" + hmac.new(word.encode(), HELLO, hashlib.sha256).hexdigest()
            refused = deliver(client, forged)
            assert refused.status_code == 401, (word, refused.text)
            assert refused.json()["code"] == "invalid_signature"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_prefect_secret_block_follows_the_same_rule(tmp_path: Path) -> None:
    from prefect.blocks.system import Secret

    new, old = generate_secret(SignatureConfig()), generate_secret(SignatureConfig())
    with prefect_server(tmp_path / "prefect") as api_url:
        Secret(value=EVERYBODY + "\n").save("github-webhook", overwrite=True)
        Secret(value=f"{new} {old}").save("demo-webhook", overwrite=True)
        store = SecretStore(
            tmp_path / "secrets",
            grace_seconds=GRACE,
            generate=lambda c: generate_secret(c.signature),
            prefect_api_url=api_url,
        )
        github = SourceConfig(signature=GITHUB, secret="block:github-webhook")
        assert store.secrets("github", github) == [EVERYBODY + "\n"]  # a block's value is taken exactly
        assert store.secrets("demo", reference("block:demo-webhook")) == [new, old]


def test_stores_making_a_managed_secret_at_once_agree_on_one(tmp_path: Path) -> None:
    """As gateway processes starting together (`--workers N`): each store makes the missing secret under one lock,
    so all of them, and the file senders read, hold the same secret."""
    stores = [make_store(tmp_path) for _ in range(8)]
    barrier = threading.Barrier(len(stores))
    found: list[str] = []

    def first_delivery(store: SecretStore) -> None:
        barrier.wait()
        found.append(store.secrets("shop", SourceConfig())[0])

    threads = [threading.Thread(target=first_delivery, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(found) == len(stores)
    assert set(found) == {json.loads((tmp_path / "shop.json").read_text())["current"]}
