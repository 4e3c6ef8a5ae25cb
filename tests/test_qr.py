"""The sandbox's QR encoder against an independent one (the `qrcode` package), module by module,
and the qr-code-generator action end to end."""

from __future__ import annotations

import io

import pytest
import qrcode
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from qrcode.constants import ERROR_CORRECT_M
from qrcode.util import MODE_8BIT_BYTE, QRData

from flora_mcp.sandbox.qr import encode, matrix
from tests.helpers import call, first_ids


def reference(payload: bytes, version: int, mask: int) -> list[list[bool]] | None:
    code = qrcode.QRCode(version=version, error_correction=ERROR_CORRECT_M, mask_pattern=mask, border=0)
    code.add_data(QRData(payload, mode=MODE_8BIT_BYTE))  # byte mode, as ours (it would pick others)
    try:
        code.make(fit=False)
    except Exception:  # the payload does not fit this version
        return None
    return [[bool(m) for m in row] for row in code.modules]


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=1, max_size=106), st.integers(1, 6), st.integers(0, 7))
def test_every_version_and_mask_matches_the_reference_encoder(payload, version, mask):
    expected = reference(payload, version, mask)
    if expected is not None:
        assert matrix(payload, version, mask) == expected


def test_smallest_version_is_chosen_and_long_text_refused():
    assert len(encode("hi")) == 21  # version 1
    assert len(encode("x" * 106)) == 41  # version 6
    with pytest.raises(ValueError, match="106"):
        encode("x" * 107)


async def test_qr_action_returns_the_code_as_an_image(make_session, fast_sandbox):
    url = "https://app.flora.ai/projects/prj_abc123"
    async with make_session() as client:
        workspace_id, project_id = await first_ids(client)
        result, run = await call(client, "run_action", {
            "action_id": "qr-code-generator", "inputs": [{"type": "text", "text": url}], "params": {"scale": 4},
            "workspace_id": workspace_id, "project_id": project_id})
    assert not result.is_error and run["status"] == "completed"
    data = fast_sandbox.state.read_url(run["outputs"][0]["url"], next(iter(fast_sandbox.state.accounts.values())))
    image = Image.open(io.BytesIO(data)).convert("1")
    modules = encode(url)
    assert image.size == ((len(modules) + 8) * 4,) * 2
    sampled = [[image.getpixel(((c + 4) * 4 + 1, (r + 4) * 4 + 1)) == 0 for c in range(len(modules))]
               for r in range(len(modules))]
    assert sampled == modules  # the picture is the code, module for module
