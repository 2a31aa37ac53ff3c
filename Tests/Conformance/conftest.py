"""Prints the conformance table: provider x parameter set, what was checked and how it came out."""


def pytest_terminal_summary(terminalreporter):
    from test_providers import RESULTS

    if not RESULTS:
        return
    terminalreporter.write_line("")
    terminalreporter.write_line("| provider | parameters | checked | result |")
    terminalreporter.write_line("|---|---|---|---|")
    for provider, case, what, outcome in sorted(RESULTS):
        terminalreporter.write_line(f"| {provider} | {case} | {what} | {outcome} |")
