"""The sandbox keeps a bounded log of recent requests, and still counts them all."""

from flora_mcp.sandbox.state import REQUEST_LOG_SIZE, SandboxState


def test_request_log_keeps_the_latest_requests_and_stays_bounded():
    state = SandboxState()
    total = 3 * REQUEST_LOG_SIZE + 7
    for i in range(total):
        state.log_request("acct", "GET", f"/runs/{i}")
    assert len(state.request_log) <= 2 * REQUEST_LOG_SIZE
    assert state.request_log[-1] == ("acct", "GET", f"/runs/{total - 1}")
    assert [p for _, _, p in state.request_log[-REQUEST_LOG_SIZE:]] == [f"/runs/{i}" for i in range(total - REQUEST_LOG_SIZE, total)]
    assert state.requests_seen == total
