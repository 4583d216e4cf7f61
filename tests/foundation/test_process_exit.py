"""A process's objects are frozen at its exit, after the exit handlers registered later; what it
wrote is still flushed and its temporary folders still removed."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_the_freeze_comes_after_later_exit_handlers_and_loses_no_output(tmp_path) -> None:
    program = textwrap.dedent(
        f"""
        import atexit, gc, tempfile
        from jstore.process_exit import freeze_at_exit

        atexit.register(lambda: print("registered before: frozen", gc.get_freeze_count() > 0))
        freeze_at_exit()
        atexit.register(lambda: print("registered after: frozen", gc.get_freeze_count() > 0))

        left_open = open({str(tmp_path / "out.txt")!r}, "w")
        left_open.write("every byte")
        scratch = tempfile.TemporaryDirectory(dir={str(tmp_path)!r})
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )

    assert done.stdout.splitlines() == [
        "registered after: frozen False",
        "registered before: frozen True",
    ]
    assert (tmp_path / "out.txt").read_text() == "every byte"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
