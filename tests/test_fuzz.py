"""The fuzz harness (fuzz/): its targets on the seed corpus, and a short atheris run.

The long campaigns are run by hand (``python -m fuzz --minutes N``; figures in
fuzz/README.md); CI runs each target for a few thousand executions so the harness
cannot rot.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fuzz.targets import TARGETS, _pinned_curve, _run_connection, _run_secure
from zmtp import SocketType

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def seeds(target: str) -> list[Path]:
    return sorted((CORPUS / target).iterdir())


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_the_seed_corpus_passes_its_target(target: str) -> None:
    files = seeds(target)
    assert len(files) >= 8, f"fuzz/corpus/{target} is missing seeds (python -m fuzz.make_corpus)"
    for path in files:
        TARGETS[target](path.read_bytes())


def test_the_connection_seeds_are_real_conversations() -> None:
    # Recorded from libzmq: each completes a handshake and carries traffic.
    for path in seeds("connection"):
        data = path.read_bytes()
        socket_type = list(SocketType)[data[0] % len(SocketType)]
        events, error, _ = _run_connection(socket_type, -1, [data[10:]])
        assert any("HandshakeComplete" in str(e) for e in events), path.name
        assert error == "NoneType", (path.name, error)


def test_the_secure_seeds_are_real_conversations() -> None:
    # Recorded from libzmq under the target's pinned CURVE seeds: with a 200 verdict
    # each completes its PLAIN, CURVE or NULL-with-ZAP handshake and carries traffic.
    for path in seeds("secure"):
        data = path.read_bytes()
        if data[1] != 0 or not path.name.startswith("libzmq-"):
            continue  # other verdicts, and regressions found by the fuzzer
        with _pinned_curve():
            events, error, _ = _run_secure(data[0], b"200", [data[10:]])
        assert any("HandshakeComplete" in str(e) for e in events), path.name
        assert any(e[0] == "message" for e in events if isinstance(e, tuple)), path.name
        assert error == "NoneType", (path.name, error)


def test_the_connection_target_catches_a_segmentation_dependence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The oracle must be able to fail: make the outcome depend on the chunking.
    from fuzz import targets  # noqa: PLC0415

    real = targets._run_connection

    def flaky(socket_type: SocketType, limit: int, chunks: list[bytes]) -> object:
        events, kind, text = real(socket_type, limit, chunks)
        return events, kind if len(chunks) == 1 else "Other", text

    monkeypatch.setattr(targets, "_run_connection", flaky)
    data = seeds("connection")[0].read_bytes()
    split = data[:2] + bytes([64, 128] + [200] * 6) + data[10:]
    with pytest.raises(AssertionError, match="segmentation"):
        targets.connection(split)


def test_a_short_atheris_run_finds_nothing(tmp_path: Path) -> None:
    pytest.importorskip("atheris", reason="atheris is in the test extra; pip install atheris")
    proc = subprocess.run(
        [sys.executable, "-m", "fuzz", "--runs", "3000"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for target in TARGETS:
        assert f"{target}: 3,000 executions" in proc.stdout, proc.stdout
