"""GPT-2's byte-level alphabet (bytes_to_unicode in its encoder.py): each byte's printable stand-in character, as
byte-level BPE vocabularies (GPT-2, Llama 3, SmolLM) spell their tokens. No third-party imports: the CLI tests use it
with any python3."""


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs, n = list(bs), 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}
