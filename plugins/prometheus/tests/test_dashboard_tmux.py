"""`dspy-turbo top` as a person uses it: in a terminal (tmux, 80x24) against a live DSPy
service exporting metrics; the numbers move between two looks; Ctrl-C leaves cleanly."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def field(screen, label):
    """The text after ``label`` on its line in the frame."""
    for line in screen.splitlines():
        stripped = line.strip("│ ")
        if stripped.startswith(label + " "):
            return stripped[len(label):].strip()
    return None


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_top_in_tmux_shows_moving_numbers_and_quits_on_ctrl_c(tmp_path, tmux):
    service = subprocess.Popen([sys.executable, str(ROOT / "examples" / "metrics_service.py"), "--port", "0", "--seconds", "40"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    session = f"dspy-turbo-top-{uuid.uuid4().hex[:8]}"
    try:
        line = service.stdout.readline()
        assert line.startswith("metrics: http://"), line
        url = line.split()[1]
        top = str(Path(sys.executable).with_name("dspy-turbo"))
        done = tmp_path / "exit-code"
        command = f"{top} top --url {url} --interval 0.5; echo $? > {done}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
        subprocess.run([tmux, "-L", session, "new-session", "-d", "-s", session, "-x", "80", "-y", "24", command],
                       check=True, env=env)
        tmux_cmd = [tmux, "-L", session]
        time.sleep(3)
        first = capture_with(tmux_cmd, session)
        time.sleep(2)
        second = capture_with(tmux_cmd, session)
        for screen in (first, second):
            assert "dspy-turbo top" in screen and "requests/s" in screen and "hit rate" in screen, screen
            assert len(screen.splitlines()) <= 24 and max(len(x) for x in screen.splitlines()) <= 80
        req1, req2 = field(first, "requests"), field(second, "requests")
        total1, total2 = int(req1.split()[0].replace(",", "")), int(req2.split()[0].replace(",", ""))
        assert total2 > total1 > 0, (first, second)
        assert field(second, "requests/s").split()[0] not in ("-", "0.0"), second
        assert field(second, "$ saved") != field(first, "$ saved") or field(second, "LM calls/s") != field(first, "LM calls/s")
        subprocess.run([*tmux_cmd, "send-keys", "-t", session, "C-c"], check=True)
        deadline = time.monotonic() + 5
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert done.exists() and done.read_text().strip() == "0", "Ctrl-C ends top with exit code 0"
    finally:
        subprocess.run([tmux, "-L", session, "kill-server"], capture_output=True)
        service.terminate()
        service.wait(10)


def capture_with(tmux_cmd, session):
    return subprocess.run([*tmux_cmd, "capture-pane", "-p", "-t", session], capture_output=True, text=True,
                          check=True).stdout
