"""theo/cli/: parsing, output and error paths of every command (click's CliRunner).

Real pulls are in test_pull.py; transcribe/translate against a real server in
tests/integration/test_cli.py. The HTTP error paths here use a tiny stdlib HTTP server
that answers like an OpenAI-compatible server would.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
from click.testing import CliRunner, Result

from tests.conftest import FIXTURES
from tests.unit.conftest import ENGLISH_MODEL, MULTILINGUAL_MODEL, manifest_data, write_manifest
from theo import __version__
from theo.cli import main
from theo.cli import serve as serve_module
from theo.cli.output import human_size
from theo.cli.serve import page_url
from theo.registry import ModelRegistry

COMMANDS = ["serve", "transcribe", "translate", "list", "inspect", "pull", "rm"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(*args: str, input: bytes | str | None = None, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input, env=env)


# --- help and version ------------------------------------------------------------------


def test_help_lists_every_command() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for command in COMMANDS:
        assert f"  {command} " in result.output
    assert "theo pull faster-whisper-tiny.en" in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: ") and f" {command} [OPTIONS]" in result.output
    assert "Show this message and exit." in result.output


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"theo, version {__version__}"


def test_unknown_command_is_a_usage_error() -> None:
    result = run("frobnicate")
    assert result.exit_code == 2
    assert "No such command 'frobnicate'" in result.output


def test_human_size() -> None:
    assert human_size(512) == "512 B"
    assert human_size(78_093_394) == "78.1 MB"
    assert human_size(3_087_284_237) == "3.1 GB"


# --- list ----------------------------------------------------------------------------


def test_list_without_models(tmp_path: Path) -> None:
    result = run("list", "--models-dir", str(tmp_path / "none"))
    assert result.exit_code == 0
    assert result.output == "No models installed.\n"
    assert json.loads(run("list", "--models-dir", str(tmp_path), "--json").output) == []


def test_list_table_shows_real_size_on_disk(models_dir: Path) -> None:
    (models_dir / ENGLISH_MODEL / "model.bin").write_bytes(b"\0" * 2_500_000)

    result = run("list", "--models-dir", str(models_dir))

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "ENGINE", "ARCHITECTURE", "SIZE"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {ENGLISH_MODEL, MULTILINGUAL_MODEL}
    assert rows[ENGLISH_MODEL][1:4] == ["stt", "faster-whisper", "encoder-decoder"]
    assert rows[ENGLISH_MODEL][4:] == ["2.5", "MB"]  # the weights plus a small theo.yaml


def test_list_json(models_dir: Path) -> None:
    result = run("list", "--models-dir", str(models_dir), "--json")
    rows = json.loads(result.output)
    assert [row["name"] for row in rows] == sorted([ENGLISH_MODEL, MULTILINGUAL_MODEL])
    assert rows[0]["size_bytes"] == (models_dir / rows[0]["name"] / "theo.yaml").stat().st_size
    assert Path(rows[0]["path"]).is_absolute()


def test_list_reads_the_models_dir_from_the_environment(models_dir: Path) -> None:
    result = run("list", env={"THEO_MODELS_DIR": str(models_dir)})
    assert ENGLISH_MODEL in result.output


def test_list_catalog_marks_installed_models(models_dir: Path) -> None:
    result = run("list", "--catalog", "--models-dir", str(models_dir))
    assert result.exit_code == 0
    rows = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert "faster-whisper-large-v3" in rows
    assert rows[ENGLISH_MODEL].rstrip().endswith("yes")
    assert not rows["faster-whisper-large-v3"].rstrip().endswith("yes")
    catalog = json.loads(run("list", "--catalog", "--json").output)
    tiny = next(row for row in catalog if row["name"] == ENGLISH_MODEL)
    assert tiny["sources"] == ["pypi", "huggingface"]
    assert tiny["huggingface_repo"] == "Systran/faster-whisper-tiny.en"


# --- inspect -------------------------------------------------------------------------


def test_inspect_shows_the_manifest(models_dir: Path) -> None:
    result = run("inspect", MULTILINGUAL_MODEL, "--models-dir", str(models_dir))
    assert result.exit_code == 0, result.output
    fields = dict(line.split(":", 1) for line in result.output.splitlines())
    fields = {key: value.strip() for key, value in fields.items()}
    assert fields["Name"] == MULTILINGUAL_MODEL
    assert fields["Type"] == "stt"
    assert fields["Engine"] == "faster-whisper"
    assert fields["Version"] == "1.0"
    assert fields["Architecture"] == "encoder-decoder"
    languages = ModelRegistry(models_dir).get_manifest(MULTILINGUAL_MODEL).capabilities.languages
    assert fields[f"Languages ({len(languages)})"] == ", ".join(languages)
    assert fields["Translation"] == "yes"
    assert fields["GPU required"] == "no"
    assert fields["GPU recommended"] == "no"
    assert fields["Memory"].endswith(" MB")
    assert "compute_type=int8" in fields["Engine config"]
    assert fields["Path"] == str((models_dir / MULTILINGUAL_MODEL).resolve())


def test_inspect_json(models_dir: Path) -> None:
    result = run("inspect", ENGLISH_MODEL, "--models-dir", str(models_dir), "--json")
    data = json.loads(result.output)
    assert data["name"] == ENGLISH_MODEL
    assert data["capabilities"]["translation"] is False
    assert data["path"] == str((models_dir / ENGLISH_MODEL).resolve())


def test_inspect_unknown_model_lists_the_installed_ones(models_dir: Path) -> None:
    result = run("inspect", "faster-whisper-large-v3", "--models-dir", str(models_dir))
    assert result.exit_code == 1
    assert result.output.startswith("Error: model 'faster-whisper-large-v3' is not installed")
    assert f"Installed models: {MULTILINGUAL_MODEL}, {ENGLISH_MODEL}." in result.output
    assert "Run 'theo pull faster-whisper-large-v3'" in result.output  # it is in the catalog
    assert "Traceback" not in result.output


def test_inspect_with_nothing_installed(tmp_path: Path) -> None:
    result = run("inspect", "whatever", "--models-dir", str(tmp_path))
    assert result.exit_code == 1
    assert "Installed models: none." in result.output


# --- rm ------------------------------------------------------------------------------


def test_rm_with_yes_removes_the_folder(models_dir: Path) -> None:
    result = run("rm", ENGLISH_MODEL, "--yes", "--models-dir", str(models_dir))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Removed {ENGLISH_MODEL}")
    assert not (models_dir / ENGLISH_MODEL).exists()
    assert ModelRegistry(models_dir).names() == [MULTILINGUAL_MODEL]
    assert [p.name for p in models_dir.iterdir()] == [MULTILINGUAL_MODEL]


def test_rm_asks_first(models_dir: Path) -> None:
    declined = run("rm", ENGLISH_MODEL, "--models-dir", str(models_dir), input="n\n")
    assert declined.exit_code == 1
    assert f"Remove {ENGLISH_MODEL}" in declined.output
    assert "Nothing removed." in declined.output
    assert (models_dir / ENGLISH_MODEL / "theo.yaml").is_file()

    confirmed = run("rm", ENGLISH_MODEL, "--models-dir", str(models_dir), input="y\n")
    assert confirmed.exit_code == 0
    assert not (models_dir / ENGLISH_MODEL).exists()


def test_rm_unknown_model(models_dir: Path) -> None:
    result = run("rm", "nope", "--yes", "--models-dir", str(models_dir))
    assert result.exit_code == 1
    assert "model 'nope' is not installed" in result.output


# --- serve ---------------------------------------------------------------------------


def test_serve_without_models_exits_1(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    result = run("serve", "--models-dir", str(empty))
    assert result.exit_code == 1
    assert result.output == (
        f"Error: No models installed in {empty.resolve()}. "
        "Run 'theo pull faster-whisper-tiny.en'.\n"
    )


def test_serve_rejects_a_bad_port() -> None:
    result = run("serve", "--port", "70000")
    assert result.exit_code == 2
    assert "70000 is not in the range" in result.output


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://localhost:8000/"),
        ("::", "http://localhost:8000/"),
        ("127.0.0.1", "http://127.0.0.1:8000/"),
        ("::1", "http://[::1]:8000/"),
    ],
)
def test_serve_names_the_page_a_person_can_open(host: str, url: str) -> None:
    assert page_url(host, 8000) == url


def test_serve_prints_the_page_address_once_every_model_is_ready(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answers: list[Exception | httpx.Response] = [
        httpx.ConnectError("not listening yet"),
        httpx.Response(503),  # models loading
        httpx.Response(200),
    ]
    probed: list[str] = []

    def get(url: str, timeout: float) -> httpx.Response:
        probed.append(url)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    class Running:
        def poll(self) -> None:
            return None

    monkeypatch.setattr(httpx, "get", get)
    monkeypatch.setattr(time, "sleep", lambda _: None)
    serve_module._announce_when_ready(Running(), "0.0.0.0", 8000)  # type: ignore[arg-type]
    assert probed == ["http://127.0.0.1:8000/health"] * 3
    assert "Theo is ready: open http://localhost:8000/ in a browser" in capsys.readouterr().out


# --- transcribe / translate: argument handling and errors -----------------------------


def test_transcribe_server_down(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    jfk = str(FIXTURES / "jfk.flac")
    for args in (["transcribe", jfk, "--model", "m"], ["translate", jfk, "--model", "m"]):
        result = run(*args, "--server", url)
        assert result.exit_code == 1
        assert result.output == f"Error: server not available at {url}. Run 'theo serve' first.\n"
    # THEO_SERVER_URL is the default for --server
    result = run("transcribe", jfk, "--model", "m", env={"THEO_SERVER_URL": url})
    assert f"server not available at {url}." in result.output


def test_transcribe_default_server_is_localhost_8000() -> None:
    assert "http://localhost:8000" in run("transcribe", "--help").output


def test_word_timestamps_need_verbose_json() -> None:
    result = run("transcribe", str(FIXTURES / "jfk.flac"), "--word-timestamps", "-f", "srt")
    assert result.exit_code == 2
    assert "--word-timestamps needs --format verbose_json" in result.output


def test_transcribe_rejects_bad_options() -> None:
    jfk = str(FIXTURES / "jfk.flac")
    assert run("transcribe", jfk, "--temperature", "1.5").exit_code == 2
    assert run("transcribe", jfk, "--format", "mp3").exit_code == 2
    assert run("transcribe", "/no/such/file.wav").exit_code == 2
    # translate has no --language: the output language is always English
    assert run("translate", jfk, "--language", "fr").exit_code == 2


def test_transcribe_empty_input(tmp_path: Path) -> None:
    result = run("transcribe", "-", "--model", "m", input=b"")
    assert result.exit_code == 1
    assert "is empty" in result.output


class _Recorder(BaseHTTPRequestHandler):
    """Answers every POST with the status/body the test sets; records what it received."""

    status = 200
    body = b"hello world\n"
    content_type = "text/plain"
    received: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).received.append(self.rfile.read(length))
        self.send_response(self.status)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, type[_Recorder]]]:
    handler = type("Handler", (_Recorder,), {"received": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


def test_transcribe_sends_the_openai_fields(recorder: tuple[str, type[_Recorder]]) -> None:
    url, handler = recorder
    result = run(
        "transcribe", "-", "--server", url, "--model", "m1", "--language", "fr",
        "--prompt", "Bonjour", "--temperature", "0.2", "--word-timestamps",
        input=b"RIFF fake audio",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output == "hello world\n"  # the body, not doubled newlines
    sent = handler.received[0].decode()
    for field, value in [
        ("model", "m1"),
        ("language", "fr"),
        ("prompt", "Bonjour"),
        ("temperature", "0.2"),
        ("response_format", "verbose_json"),
        ("timestamp_granularities[]", "word"),
    ]:
        assert f'name="{field}"\r\n\r\n{value}\r\n' in sent
    assert 'name="file"; filename="audio"' in sent
    assert "RIFF fake audio" in sent


def test_translate_sends_no_language(recorder: tuple[str, type[_Recorder]]) -> None:
    url, handler = recorder
    audio = FIXTURES / "jfk.flac"
    result = run("translate", str(audio), "--server", url, "--model", "m", "-f", "srt")
    assert result.exit_code == 0
    sent = handler.received[0].decode("latin-1")
    assert 'name="response_format"\r\n\r\nsrt\r\n' in sent
    assert 'name="language"' not in sent
    assert 'filename="jfk.flac"' in sent


def test_http_error_prints_the_server_message(recorder: tuple[str, type[_Recorder]]) -> None:
    url, handler = recorder
    handler.status, handler.content_type = 404, "application/json"
    handler.body = json.dumps(
        {"error": {"message": "The model 'x' does not exist.", "type": "invalid_request_error"}}
    ).encode()
    result = run("transcribe", str(FIXTURES / "jfk.flac"), "--server", url, "--model", "x")
    assert result.exit_code == 1
    assert result.output == "Error: The model 'x' does not exist.\n"


def test_http_error_without_openai_body(recorder: tuple[str, type[_Recorder]]) -> None:
    url, handler = recorder
    handler.status, handler.body = 502, b"Bad Gateway from a proxy"
    result = run("transcribe", str(FIXTURES / "jfk.flac"), "--server", url, "--model", "x")
    assert result.exit_code == 1
    assert result.output == "Error: HTTP 502: Bad Gateway from a proxy\n"


def test_default_model_is_the_first_installed(
    recorder: tuple[str, type[_Recorder]], models_dir: Path
) -> None:
    url, handler = recorder
    env = {"THEO_MODELS_DIR": str(models_dir)}
    jfk = str(FIXTURES / "jfk.flac")
    assert run("transcribe", jfk, "--server", url, env=env).exit_code == 0
    assert run("translate", jfk, "--server", url, env=env).exit_code == 0
    transcribe_body, translate_body = (body.decode("latin-1") for body in handler.received)
    # sorted: faster-whisper-base < faster-whisper-tiny.en; translate needs a translating one
    assert f'name="model"\r\n\r\n{MULTILINGUAL_MODEL}\r\n' in transcribe_body
    assert f'name="model"\r\n\r\n{MULTILINGUAL_MODEL}\r\n' in translate_body


def test_translate_default_skips_models_that_cannot_translate(
    recorder: tuple[str, type[_Recorder]], tmp_path: Path
) -> None:
    url, handler = recorder
    write_manifest(tmp_path, "a-english", manifest_data("a-english"))
    write_manifest(
        tmp_path, "b-multi", manifest_data("b-multi", languages=["en", "fr"], translation=True)
    )
    env = {"THEO_MODELS_DIR": str(tmp_path)}
    assert run("translate", str(FIXTURES / "jfk.flac"), "--server", url, env=env).exit_code == 0
    assert 'name="model"\r\n\r\nb-multi\r\n' in handler.received[0].decode("latin-1")


# --- pull: argument handling and errors (real pulls are in test_pull.py) ---------------


def test_pull_unknown_catalog_model(tmp_path: Path) -> None:
    result = run("pull", "whisper-gigantic", "--models-dir", str(tmp_path))
    assert result.exit_code == 1
    assert result.output.startswith("Error: Unknown model 'whisper-gigantic'.")
    assert "faster-whisper-large-v3" in result.output
    assert not any(tmp_path.iterdir())


def test_pull_rejects_unsafe_names(tmp_path: Path) -> None:
    result = run("pull", "a..b", "--models-dir", str(tmp_path / "m"))
    assert result.exit_code == 1
    assert "invalid model name 'a..b'" in result.output
    result = run("pull", "bad name!", "--models-dir", str(tmp_path / "m"))
    assert result.exit_code == 1
    assert "invalid model name" in result.output


def test_pull_missing_folder(tmp_path: Path) -> None:
    result = run("pull", "./no-such-folder", "--models-dir", str(tmp_path))
    assert result.exit_code == 1
    assert result.output == "Error: ./no-such-folder: no such folder\n"


def test_pull_folder_that_is_not_a_model(tmp_path: Path) -> None:
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"x")
    result = run("pull", str(folder), "--models-dir", str(tmp_path / "models"))
    assert result.exit_code == 1
    assert (
        "is not a CTranslate2 Whisper model: missing config.json, tokenizer.json" in result.output
    )
    assert ModelRegistry(tmp_path / "models").list_models() == []


def test_pull_name_needs_a_single_source(tmp_path: Path) -> None:
    result = run("pull", "a/b", "c/d", "--name", "x", "--models-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "--name needs exactly one model" in result.output


def test_pull_catalog_model_rejects_name_and_revision(tmp_path: Path) -> None:
    result = run("pull", ENGLISH_MODEL, "--name", "x", "--models-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "apply to a folder or an ORG/REPO" in result.output


def test_pull_source_the_entry_does_not_have(tmp_path: Path) -> None:
    result = run(
        "pull", "faster-whisper-large-v3", "--source", "pypi", "--models-dir", str(tmp_path)
    )
    assert result.exit_code == 1
    assert "cannot be pulled from pypi; its sources: huggingface" in result.output


def test_pull_installed_model_is_a_no_op(models_dir: Path) -> None:
    before = (models_dir / ENGLISH_MODEL / "theo.yaml").read_bytes()
    result = run("pull", ENGLISH_MODEL, "--models-dir", str(models_dir))
    assert result.exit_code == 0
    assert result.output == (
        f"{ENGLISH_MODEL} is already installed at {models_dir / ENGLISH_MODEL} "
        "(--force reinstalls)\n"
    )
    assert (models_dir / ENGLISH_MODEL / "theo.yaml").read_bytes() == before


def _events(*events: dict[str, object]) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)


def test_transcribe_stream_prints_the_deltas(recorder: tuple[str, type[_Recorder]]) -> None:
    url, handler = recorder
    handler.content_type = "text/event-stream"
    handler.body = _events(
        {"type": "transcript.text.delta", "delta": "Hello there."},
        {"type": "transcript.text.delta", "delta": " General Kenobi."},
        {"type": "transcript.text.done", "text": "Hello there. General Kenobi."},
    )
    result = run("transcribe", str(FIXTURES / "jfk.flac"), "--server", url, "-m", "m", "--stream")
    assert result.exit_code == 0, result.output
    assert result.output == "Hello there. General Kenobi.\n"
    sent = handler.received[0].decode("latin-1")
    assert 'name="stream"\r\n\r\ntrue\r\n' in sent
    assert 'name="response_format"\r\n\r\ntext\r\n' in sent


def test_translate_stream(recorder: tuple[str, type[_Recorder]]) -> None:
    url, handler = recorder
    handler.content_type = "text/event-stream"
    handler.body = _events(
        {"type": "transcript.text.delta", "delta": "Hi."},
        {"type": "transcript.text.done", "text": "Hi."},
    )
    result = run("translate", str(FIXTURES / "jfk.flac"), "--server", url, "-m", "m", "--stream")
    assert (result.exit_code, result.output) == (0, "Hi.\n")
    assert 'name="stream"\r\n\r\ntrue\r\n' in handler.received[0].decode("latin-1")


def test_stream_error_event_after_text(recorder: tuple[str, type[_Recorder]]) -> None:
    url, handler = recorder
    handler.content_type = "text/event-stream"
    handler.body = _events(
        {"type": "transcript.text.delta", "delta": "Hello there."},
        {"type": "error", "error": {"message": "The runner is down.", "type": "server_error"}},
    )
    result = run("transcribe", str(FIXTURES / "jfk.flac"), "--server", url, "-m", "m", "--stream")
    assert result.exit_code == 1
    assert result.output == "Hello there.\nError: The runner is down.\n"


def test_stream_http_error(recorder: tuple[str, type[_Recorder]]) -> None:
    url, handler = recorder
    handler.status, handler.content_type = 404, "application/json"
    handler.body = json.dumps({"error": {"message": "The model 'x' does not exist."}}).encode()
    result = run("transcribe", str(FIXTURES / "jfk.flac"), "--server", url, "-m", "x", "--stream")
    assert (result.exit_code, result.output) == (1, "Error: The model 'x' does not exist.\n")


@pytest.mark.parametrize("extra", [["-f", "srt"], ["-f", "json"], ["--word-timestamps"]])
def test_stream_is_plain_text_only(extra: list[str]) -> None:
    result = run("transcribe", str(FIXTURES / "jfk.flac"), "-m", "m", "--stream", *extra)
    assert result.exit_code == 2
    assert "--stream" in result.output
