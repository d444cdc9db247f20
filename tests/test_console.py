"""One way to name a parameter (docs/faults.md, "When things go wrong"): the library names it in
backticks as a Python caller passes it, in errors and log lines alike; a command says its flag.
Library code logs; a command shows those lines as its own (INFO on stdout, warnings on stderr)."""

from __future__ import annotations

import logging

import pytest

from bench.core.errors import BenchError, SettingError, cli_main

log = logging.getLogger("bench.test_console")


def test_a_setting_error_names_the_parameter_for_python_and_the_flag_for_a_command(capsys):
    with pytest.raises(SettingError, match=r"^`gpus_per_job`: 4 GPUs per job$"):
        raise SettingError("gpus_per_job", "4 GPUs per job")

    @cli_main
    def main() -> int:
        raise SettingError("gpus_per_job", "4 GPUs per job")

    @cli_main(flags={"folds": "--cv-folds"})
    def sweep() -> int:
        raise BenchError("`folds` 1: must be >= 2; or pass `skip_invalid`")

    for command, line in ((main, "error: --gpus-per-job: 4 GPUs per job"),
                          (sweep, "error: --cv-folds 1: must be >= 2; or pass --skip-invalid-runs")):
        with pytest.raises(SystemExit) as stop:
            command()
        assert stop.value.code == 2 and capsys.readouterr().err == line + "\n"


def test_a_command_shows_the_library_s_log_lines_as_its_own_with_flags(capsys, caplog):
    @cli_main
    def main() -> int:
        log.info("`annotations`=clean: detecting")
        log.warning("warning: leave `split` out")
        log.debug("not shown")
        return 0

    assert main() == 0
    said = capsys.readouterr()
    assert said.out == "--annotations clean: detecting\n"
    assert said.err == "warning: leave --split out\n"
    log.info("after the command: not on the console")  # the command's handler is gone
    assert capsys.readouterr().out == ""
    assert "`annotations`=clean: detecting" in caplog.text  # a Python caller's logging sees names
