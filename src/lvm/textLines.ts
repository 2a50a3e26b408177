// The lines of a text, one at a time, from a string or from its UTF-8 bytes as read.
//
// Why bytes: a host daemon re-reads its VG's metadata text (5.5 MB at 10,000 LVs) after
// every master commit. Decoded whole, the text is a second 5.5 MB beside the bytes, in
// V8's old space, where it counts towards the heap V8 lets grow before it collects (issue
// 14). Decoded a piece at a time, each piece is young garbage as soon as its lines are read.
//
// A piece ends just after a "\n" (or at the end): "\n" is one byte that is never part of a
// longer UTF-8 sequence, so no character is cut in two, no line spans two pieces, and each
// piece decodes as it would within the whole text (a bad sequence becomes U+FFFD either way).

/** Bytes decoded at once; a longer line is decoded whole. */
export const PIECE_BYTES = 64 * 1024;

const NEWLINE = 0x0a;

/** `text` as one string: decoded whole when it is bytes (what a reader that needs all of it at once pays). */
export function wholeText(text: string | Uint8Array): string {
  return typeof text === 'string' ? text : Buffer.from(text.buffer, text.byteOffset, text.byteLength).toString('utf8');
}

/** Returns the next line (without its "\n") at each call, then undefined; a text ending in "\n" ends with an empty line. */
export type NextLine = () => string | undefined;

/** The lines of `text`; of its UTF-8 decoding when it is bytes, `pieceBytes` at a time. */
export function linesOf(text: string | Uint8Array, pieceBytes = PIECE_BYTES): NextLine {
  if (typeof text === 'string') return linesOfString(text);
  let pieceStart = 0;
  let lines: NextLine | undefined;
  const nextPiece = (): NextLine | undefined => {
    if (pieceStart >= text.length) return undefined;
    const newline = text.indexOf(NEWLINE, Math.min(text.length, pieceStart + pieceBytes) - 1);
    const end = newline < 0 ? text.length : newline + 1;
    const piece = Buffer.from(text.buffer, text.byteOffset + pieceStart, end - pieceStart).toString('utf8');
    pieceStart = end;
    // A piece ends in "\n" but the last: the empty line after it belongs to the next piece.
    return linesOfString(end < text.length ? piece.slice(0, -1) : piece);
  };
  // No bytes is one empty line, as for "".
  if (text.length === 0) return linesOfString('');
  return () => {
    for (;;) {
      const line = lines?.();
      if (line !== undefined) return line;
      lines = nextPiece();
      if (lines === undefined) return undefined;
    }
  };
}

function linesOfString(text: string): NextLine {
  let lineStart = 0;
  return () => {
    if (lineStart > text.length) return undefined;
    const newline = text.indexOf('\n', lineStart);
    const end = newline < 0 ? text.length : newline;
    const line = text.slice(lineStart, end);
    lineStart = end + 1;
    return line;
  };
}
