"""A Nodepool unit file's `-l <logging config>` is safe with poold's daemons.

Nodepool's -l names a Python logging configuration; poold's names a log file.
A copied unit file must not make poold append log lines to the operator's
logging configuration: the configuration is read for its file handler and
left byte for byte as it was."""
import os

import pytest

from launcher_fixture import launcher  # noqa: F401  (fixture)

INI = """[loggers]
keys=root,nodepool

[handlers]
keys=console,normal

[formatters]
keys=simple

[logger_root]
level=WARNING
handlers=console

[logger_nodepool]
level=DEBUG
handlers=normal
qualname=nodepool

[handler_console]
level=WARNING
class=StreamHandler
formatter=simple
args=(sys.stdout,)

[handler_normal]
level=DEBUG
class=logging.handlers.WatchedFileHandler
formatter=simple
args=('{log}',)

[formatter_simple]
format=%(asctime)s %(levelname)s %(name)s: %(message)s
"""

DICT = """version: 1
formatters:
  simple:
    format: '%(asctime)s %(levelname)s %(name)s: %(message)s'
handlers:
  console:
    class: logging.StreamHandler
  normal:
    class: logging.handlers.TimedRotatingFileHandler
    filename: "{log}"
    when: midnight
loggers:
  nodepool:
    handlers: [normal]
    level: DEBUG
"""


@pytest.mark.parametrize("kind,template", [("fileConfig", INI), ("dictConfig", DICT)])
def test_logging_config_is_read_for_its_file_and_left_untouched(launcher, tmp_path, kind, template):
    """poold -l <Nodepool logging config>: logs go to the file handler's file, the
    configuration stays unchanged, and the log says how -l was read."""
    target = tmp_path / "launcher.log"
    conf = tmp_path / "launcher-logging.conf"
    conf.write_text(template.format(log=target))
    before = conf.read_bytes()
    launcher.write_config()
    launcher.start(args=("-l", str(conf)))
    launcher.wait_for(lambda: target.exists() and b"started" in target.read_bytes(), 15, "log lines in " + str(target))
    launcher.stop()
    assert conf.read_bytes() == before
    text = target.read_text()
    assert "is a Python logging configuration (%s, Nodepool's -l)" % kind in text, text
    assert "poold 0.1.0 started" in text


def test_logging_config_without_file_handler_logs_to_stderr(launcher, tmp_path):
    """Only a console handler: poold logs to stderr (the unit's journal) and
    never writes into the configuration."""
    conf = tmp_path / "console-only.conf"
    conf.write_text(INI.replace("keys=console,normal", "keys=console").split("[handler_normal]")[0])
    before = conf.read_bytes()
    launcher.write_config()
    launcher.start(args=("-l", str(conf)))
    launcher.wait_for(lambda: "without a file handler: logging to stderr" in launcher.log_text(), 15, "note")
    launcher.stop()
    assert conf.read_bytes() == before


def test_plain_log_file_is_appended_as_before(launcher, tmp_path):
    """-l naming a log file (new, or with log lines) still appends to it."""
    log = tmp_path / "poold.log"
    log.write_text("2026-01-01 00:00:00.000 INFO poold: an earlier run\n")
    launcher.write_config()
    launcher.start(args=("-l", str(log)))
    launcher.wait_for(lambda: "poold 0.1.0 started" in log.read_text(), 15, "appended lines")
    launcher.stop()
    assert log.read_text().startswith("2026-01-01 00:00:00.000 INFO poold: an earlier run\n")
    assert os.path.getsize(log) > 60
