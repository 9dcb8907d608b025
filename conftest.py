"""A skipped test is a claim not checked: the run fails on any skip whose reason does not start
with ``expected:`` (e.g. ../shared/data missing would otherwise leave a third of the suite unrun
and the run green)."""

EXPECTED = "expected:"


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    unexpected = [r for r in reporter.stats.get("skipped", []) if not _reason(r).startswith(EXPECTED)]
    if unexpected and exitstatus == 0:
        reporter.ensure_newline()
        reporter.write_line(f"FAILED: {len(unexpected)} unexpected skips, e.g. {unexpected[0].nodeid}: "
                            f"{_reason(unexpected[0])}", red=True)
        session.exitstatus = 1


def _reason(report) -> str:
    # a skip's longrepr is (file, line, "Skipped: <reason>")
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")
