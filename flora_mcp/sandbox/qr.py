"""A small QR code encoder for the sandbox's qr-code-generator action (ISO/IEC 18004).

Byte mode, error correction level M, versions 1-6 (up to 106 bytes: enough for a URL), the mask
chosen by the standard's penalty rules. Standard library only; Pillow draws the result.
"""

from __future__ import annotations

# Level M: (error-correction codewords per block, data codewords of each block), versions 1-6.
_BLOCKS_M = {1: (10, [16]), 2: (16, [28]), 3: (26, [44]), 4: (18, [32, 32]), 5: (24, [43, 43]),
             6: (16, [27, 27, 27, 27])}
_ALIGNMENT = {1: [], 2: [6, 18], 3: [6, 22], 4: [6, 26], 5: [6, 30], 6: [6, 34]}
_MASKS = [
    lambda r, c: (r + c) % 2 == 0,
    lambda r, c: r % 2 == 0,
    lambda r, c: c % 3 == 0,
    lambda r, c: (r + c) % 3 == 0,
    lambda r, c: (r // 2 + c // 3) % 2 == 0,
    lambda r, c: (r * c) % 2 + (r * c) % 3 == 0,
    lambda r, c: ((r * c) % 2 + (r * c) % 3) % 2 == 0,
    lambda r, c: ((r + c) % 2 + (r * c) % 3) % 2 == 0,
]

_EXP = [0] * 512
_LOG = [0] * 256
_x = 1
for _i in range(255):
    _EXP[_i], _LOG[_x] = _x, _i
    _x = (_x << 1) ^ (0x11D if _x & 0x80 else 0)
for _i in range(255, 512):
    _EXP[_i] = _EXP[_i - 255]


def _gf_mul(a: int, b: int) -> int:
    return 0 if a == 0 or b == 0 else _EXP[_LOG[a] + _LOG[b]]


def _ec_codewords(data: list[int], count: int) -> list[int]:
    """Reed-Solomon remainder of data(x)·x^count by the generator of degree `count`."""
    generator = [1]
    for i in range(count):
        generator = [a ^ _gf_mul(b, _EXP[i]) for a, b in zip([*generator, 0], [0, *generator])]
    remainder = [*data, *([0] * count)]
    for i in range(len(data)):
        factor = remainder[i]
        if factor:
            for j, g in enumerate(generator):
                remainder[i + j] ^= _gf_mul(g, factor)
    return remainder[-count:]


def _codewords(payload: bytes, version: int) -> list[int]:
    ec_count, block_sizes = _BLOCKS_M[version]
    capacity = sum(block_sizes) * 8
    bits = "0100" + format(len(payload), "08b") + "".join(format(b, "08b") for b in payload)
    bits += "0" * min(4, capacity - len(bits))
    bits += "0" * (-len(bits) % 8)
    data = [int(bits[i:i + 8], 2) for i in range(0, len(bits), 8)]
    data += [0xEC if i % 2 == 0 else 0x11 for i in range((capacity - len(bits)) // 8)]
    blocks, offset = [], 0
    for size in block_sizes:
        blocks.append(data[offset:offset + size])
        offset += size
    ecs = [_ec_codewords(block, ec_count) for block in blocks]
    out = [block[i] for i in range(max(block_sizes)) for block in blocks if i < len(block)]
    return out + [ec[i] for i in range(ec_count) for ec in ecs]


def _format_bits(mask: int) -> int:
    data = (0b00 << 3) | mask  # level M is 00
    remainder = data << 10
    for shift in range(4, -1, -1):
        if remainder & (1 << (shift + 10)):
            remainder ^= 0x537 << shift
    return ((data << 10) | remainder) ^ 0x5412


def matrix(payload: bytes, version: int, mask: int) -> list[list[bool]]:
    size = 17 + 4 * version
    m: list[list[bool | None]] = [[None] * size for _ in range(size)]
    for row, col in ((0, 0), (size - 7, 0), (0, size - 7)):  # finder patterns with separators
        for r in range(-1, 8):
            for c in range(-1, 8):
                if 0 <= row + r < size and 0 <= col + c < size:
                    m[row + r][col + c] = ((0 <= r <= 6 and c in (0, 6)) or (0 <= c <= 6 and r in (0, 6))
                                           or (2 <= r <= 4 and 2 <= c <= 4))
    centers = _ALIGNMENT[version]
    for row in centers:
        for col in centers:
            if m[row][col] is not None:
                continue
            for r in range(-2, 3):
                for c in range(-2, 3):
                    m[row + r][col + c] = abs(r) == 2 or abs(c) == 2 or (r == 0 and c == 0)
    for i in range(8, size - 8):  # timing patterns
        if m[i][6] is None:
            m[i][6] = i % 2 == 0
        if m[6][i] is None:
            m[6][i] = i % 2 == 0
    bits = _format_bits(mask)
    for i in range(15):
        dark = (bits >> i) & 1 == 1
        m[i if i < 6 else i + 1 if i < 8 else size - 15 + i][8] = dark
        m[8][size - i - 1 if i < 8 else 15 - i if i < 9 else 14 - i] = dark
    m[size - 8][8] = True  # the dark module
    data = _codewords(payload, version)
    is_masked = _MASKS[mask]
    index, bit, row, step = 0, 7, size - 1, -1
    col = size - 1
    while col > 0:
        if col == 6:  # skip the vertical timing column
            col -= 1
        while 0 <= row < size:
            for c in (col, col - 1):
                if m[row][c] is None:
                    dark = index < len(data) and (data[index] >> bit) & 1 == 1
                    m[row][c] = dark != is_masked(row, c)
                    bit -= 1
                    if bit < 0:
                        index, bit = index + 1, 7
            row += step
        row -= step
        step = -step
        col -= 2
    return [[bool(v) for v in line] for line in m]


def _penalty(m: list[list[bool]]) -> int:
    size, score = len(m), 0
    for lines in (m, [list(col) for col in zip(*m)]):
        for line in lines:
            run = 1
            for a, b in zip(line, line[1:]):
                run = run + 1 if a == b else 1
                score += 3 if run == 5 else 1 if run > 5 else 0
            text = "".join("1" if v else "0" for v in line)
            score += 40 * (text.count("10111010000") + text.count("00001011101"))
    score += 3 * sum(m[r][c] == m[r + 1][c] == m[r][c + 1] == m[r + 1][c + 1]
                     for r in range(size - 1) for c in range(size - 1))
    dark = sum(map(sum, m)) * 100 // (size * size)
    return score + 10 * (abs(dark - 50) // 5)


def encode(text: str) -> list[list[bool]]:
    """The module matrix for `text` (True = dark), smallest version, best mask."""
    payload = text.encode("utf-8")
    version = next((v for v, (_, blocks) in _BLOCKS_M.items() if len(payload) + 2 <= sum(blocks)), None)
    if version is None:
        raise ValueError(f"text is {len(payload)} bytes; the sandbox's QR codes hold up to 106")
    return min((matrix(payload, version, mask) for mask in range(8)), key=_penalty)


def render(text: str, scale: int = 10, border: int = 4):
    from PIL import Image

    modules = encode(text)
    size = (len(modules) + 2 * border) * scale
    image = Image.new("1", (size, size), 1)
    pixels = image.load()
    for r, line in enumerate(modules):
        for c, dark in enumerate(line):
            if dark:
                for y in range((r + border) * scale, (r + border + 1) * scale):
                    for x in range((c + border) * scale, (c + border + 1) * scale):
                        pixels[x, y] = 0
    return image.convert("RGB")
