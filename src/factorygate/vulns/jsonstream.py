"""A JSON document read forward in chunks, one value at a time (the scanner reports' bounded memory).

:class:`JsonStream` walks the structure the caller asks for (:meth:`~JsonStream.object_keys` of an object,
:meth:`~JsonStream.array_items` of an array) and either decodes the next value with the standard library's
C decoder (:meth:`~JsonStream.value`) or steps over it without building it (:meth:`~JsonStream.skip`).
At any time it holds the undecoded text of about one chunk, or of the one value being decoded when
that is larger: a 200 MB report whose findings are decoded one by one never exists as one string or
one tree.

Errors are :class:`~factorygate.vulns.model.VulnInputError` lines naming the file: over the size
limit (counted while reading, so a pipe cannot outgrow it), not UTF-8, invalid JSON (line and column),
truncated JSON (the document ends inside a value), nested too deeply. Skipped values are checked
too (small ones decoded whole, large arrays and objects item by item); only the inside of a string
larger than the text at hand is not decoded.

Why this is not ijson (measured with ijson 3.6.0, yajl2_c backend, ``use_float=True``, best of 3, on the
reports of ``bench/bench_vuln_merge.py``: Trivy 36.2 MB and Grype 49.6 MB, 20,000 findings each).
:mod:`factorygate.vulns.reports` reads several places of one document in one pass (the top-level
fields, each Trivy result's ``Target``/``Class``/``Type`` around its findings, Grype's ``source`` after
its matches, CycloneDX ``components``/``metadata``) and steps over the rest. ijson does this at C speed
only for one prefix per pass (``items``/``kvitems``; several prefixes are an open request, ICRAR/ijson
issue 109): one ``items`` pass over the findings alone takes 0.24 s + 0.44 s, but loses the context.
Keeping it costs, for parsing alone (no observations built yet): one pass of ``parse`` events walked
in Python with the findings built by ijson's C ``items_basecoro``, 1.03 s + 0.98 s = 2.01 s; two passes
per file (``items`` for the findings, then a filtered ``parse`` for Trivy's result fields or ``items``
for Grype's ``source``), 0.80 s + 1.00 s = 1.80 s, and a second pass cannot read a pipe. With the merge
(0.53 s) either is over the 2 s target of the bench, which this reader meets: load 0.84 s + merge
0.53 s = 1.37 s.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import IO, Any

from factorygate.vulns.model import VulnInputError

CHUNK = 1 << 20
# Before decoding a value, at least this much text is held when the file has it: values smaller than
# this never straddle the end of the buffer, so the decoder does not fail on them and start over.
LOW_WATER = 256 << 10
_WS = re.compile(r"[ \t\n\r]*")
_STRING_END = re.compile(r'["\\]')  # the end of a string, or an escape, when skipping a long string
# What is left after a JSON error when the file was cut inside a literal or a number.
_CUT_LITERAL = re.compile(r"t(r(ue?)?)?|f(a(l(se?)?)?)?|n(u(ll?)?)?|-?[0-9.eE+-]*")


class JsonStreamError(VulnInputError):
    """The document itself cannot be read (as opposed to a problem with what one of its values says)."""


class _Incomplete(Exception):
    """The value runs past the text read so far."""


class JsonStream:
    """Forward-only reading of one JSON document from a binary file object."""

    def __init__(self, fh: IO[bytes], path: str, max_bytes: int) -> None:
        self.fh = fh
        self.path = path
        self.max_bytes = max_bytes
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.bytes_read = 0
        self.dropped = 0  # characters before buf[0] (read, used and let go)
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._decode = json.JSONDecoder().raw_decode
        self._started = False

    # --- errors ----------------------------------------------------------------------------------

    def fail(self, message: str) -> JsonStreamError:
        return JsonStreamError(f"{self.path}: {message}")

    def _where(self, pos: int) -> str:
        """ "line L column C" of buffer position ``pos`` (counted again from the start of the file: only
        errors need it), or "character N" when the file cannot be read again (a pipe)."""
        offset = self.dropped + pos
        lines, last = 0, -1  # newlines before offset, and the position of the last one
        seen = 0
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            with open(self.path, "rb") as again:
                while seen < offset:
                    data = again.read(CHUNK)
                    text = utf8.decode(data, final=not data)[: offset - seen]
                    if not data and not text:
                        break
                    if not seen:
                        text = text.removeprefix("\ufeff")
                    lines += text.count("\n")
                    if "\n" in text:
                        last = seen + text.rindex("\n")
                    seen += len(text)
        except OSError:
            return f"character {offset + 1}"
        return f"line {lines + 1} column {offset - last}"

    def _truncated(self) -> JsonStreamError:
        where = self._where(len(self.buf))
        return self.fail(f"truncated JSON (the document ends at {where.partition(' column')[0]})")

    def _invalid(self, pos: int, message: str) -> JsonStreamError:
        return self.fail(f"invalid JSON at {self._where(pos)}: {message}")

    # --- reading ---------------------------------------------------------------------------------

    def _fill(self, at_least: int = CHUNK) -> bool:
        """Append the next chunk (at least ``at_least`` bytes if the file has them); False at the end."""
        if self.eof:
            return False
        want = min(max(CHUNK, at_least), self.max_bytes + 1 - self.bytes_read)
        data = self.fh.read(want)
        self.bytes_read += len(data)
        if self.bytes_read > self.max_bytes:
            raise self.fail(f"over the {self.max_bytes}-byte limit for a scanner report")
        try:
            text = self._utf8.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise self.fail(f"not UTF-8 text at byte {self.bytes_read - len(data) + exc.start}") from None
        if not data:
            self.eof = True
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        if self.pos:
            self.dropped += self.pos
            self.buf = self.buf[self.pos :] + text
            self.pos = 0
        else:
            self.buf += text
        return bool(data)

    def peek(self) -> str:
        """The next character that is not white space ("" at the end of the document)."""
        if self.pos < len(self.buf):
            char = self.buf[self.pos]
            if char not in " \t\n\r":
                return char
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return ""

    def expect(self, char: str) -> None:
        found = self.peek()
        if found != char:
            if not found:
                raise self._truncated()
            raise self._invalid(self.pos, f"expecting {char!r}")
        self.pos += 1

    def _try_decode(self) -> Any:
        """The value at ``pos`` if the text read so far holds all of it; raises _Incomplete if not."""
        buf = self.buf
        try:
            value, end = self._decode(buf, self.pos)
        except json.JSONDecodeError as exc:
            rest = buf[exc.pos :]
            unterminated = exc.msg.startswith("Unterminated string")
            if not self.eof and (len(rest) <= 6 or unterminated):  # cut by the chunk: read on
                raise _Incomplete from None
            if self.eof and (unterminated or _CUT_LITERAL.fullmatch(rest.rstrip())):
                raise self._truncated() from None
            raise self._invalid(exc.pos, exc.msg) from None
        except RecursionError:
            raise self.fail("JSON nested too deeply") from None
        if end >= len(buf) and not self.eof:  # a number may go on in the next chunk
            raise _Incomplete
        self.pos = end
        return value

    def value(self) -> Any:
        """Decode the next value (reading as much as it takes)."""
        if not self.peek():
            raise self._truncated()
        if len(self.buf) - self.pos < LOW_WATER and not self.eof:
            self._fill()
        while True:
            try:
                return self._try_decode()
            except _Incomplete:
                self._fill(len(self.buf) - self.pos)  # at least double what is held: linear overall

    def skip(self) -> None:
        """Step over the next value without keeping it.

        A value that fits in the text at hand is decoded (and so checked) and dropped; a larger array
        or object is stepped over item by item, a larger string by its closing quote.
        """
        first = self.peek()
        if not first:
            raise self._truncated()
        if len(self.buf) - self.pos < LOW_WATER and not self.eof:
            self._fill()
        try:
            self._try_decode()
        except _Incomplete:
            pass
        else:
            return
        try:
            if first == "[":
                for _ in self.array_items():
                    self.skip()
            elif first == "{":
                for _ in self.object_keys():
                    self.skip()
            elif first == '"':
                self._skip_string()
            else:
                self.value()  # a number or a literal the chunk cut
        except RecursionError:
            raise self.fail("JSON nested too deeply") from None

    def _skip_string(self) -> None:
        self.pos += 1  # the opening quote
        while True:
            buf = self.buf
            m = _STRING_END.search(buf, self.pos)
            if m is None or (m.group() == "\\" and m.end() >= len(buf)):
                self.pos = len(buf) if m is None else m.start()
                if not self._fill():
                    raise self._truncated()
                continue
            self.pos = m.end() + (1 if m.group() == "\\" else 0)
            if m.group() == '"':
                return

    def object_keys(self) -> Iterator[str]:
        """The keys of the object that starts here; the caller reads or skips each key's value."""
        self.expect("{")
        if self.peek() == "}":
            self.pos += 1
            return
        while True:
            if self.peek() != '"':
                if not self.peek():
                    raise self._truncated()
                raise self._invalid(self.pos, "Expecting property name enclosed in double quotes")
            key = self.value()
            self.expect(":")
            yield key
            if self._closed("}"):
                return

    def array_items(self) -> Iterator[int]:
        """The indexes of the array that starts here; the caller reads or skips each item."""
        self.expect("[")
        if self.peek() == "]":
            self.pos += 1
            return
        index = 0
        while True:
            yield index
            index += 1
            if self._closed("]"):
                return

    def _closed(self, close: str) -> bool:
        """After a member of an object or array: True past ``close``, False past a ``,``."""
        after = self.peek()
        self.pos += 1
        if after == close:
            return True
        if after != ",":
            self.pos -= 1
            if not after:
                raise self._truncated()
            raise self._invalid(self.pos, "Expecting ',' delimiter")
        return False

    def array_values(self) -> Iterator[Any]:
        """The decoded items of the array that starts here (:meth:`array_items` and :meth:`value` in one)."""
        for _ in self.array_items():
            yield self.value()

    def end(self) -> None:
        """Nothing but white space may follow the document."""
        if self.peek():
            raise self._invalid(self.pos, "Extra data")
