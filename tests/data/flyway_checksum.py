# Flyway's published checksum algorithm, written independently of lakelet's Rust:
# decode UTF-8 (malformed bytes -> U+FFFD), read lines as java.io.BufferedReader.readLine does
# (terminators \n, \r, \r\n; no final empty line), strip a BOM from the first line, CRC32 the
# UTF-8 bytes of every line, return the value as a signed 32-bit int.
import zlib
def read_lines(text):
    lines, cur, i = [], [], 0
    while i < len(text):
        c = text[i]
        if c == '\n' or c == '\r':
            lines.append(''.join(cur)); cur = []
            if c == '\r' and i + 1 < len(text) and text[i+1] == '\n':
                i += 1
        else:
            cur.append(c)
        i += 1
    if cur:
        lines.append(''.join(cur))
    return lines
def checksum(data):
    text = data.decode('utf-8', errors='replace')
    crc = 0
    for n, line in enumerate(read_lines(text)):
        if n == 0 and line.startswith('\ufeff'):
            line = line[1:]
        crc = zlib.crc32(line.encode('utf-8'), crc)
    return crc - (1 << 32) if crc >= (1 << 31) else crc
cases = [
 ("empty", b""),
 ("one line, no newline", b"SELECT 1;"),
 ("LF", b"CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\n"),
 ("CRLF", b"CREATE TABLE t (id int);\r\nINSERT INTO t VALUES (1);\r\n"),
 ("CR only", b"CREATE TABLE t (id int);\rINSERT INTO t VALUES (1);\r"),
 ("BOM + LF", b"\xef\xbb\xbfCREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\n"),
 ("blank lines", b"\n\nCREATE TABLE t (id int);\n\n\nINSERT INTO t VALUES (1);\n\n"),
 ("trailing spaces kept", b"SELECT 1;  \n"),
 ("non-ASCII", "INSERT INTO städte VALUES ('Zürich', '東京', '🐘');\n".encode()),
 ("BOM in second line kept", b"SELECT 1;\n\xef\xbb\xbfSELECT 2;\n"),
 ("malformed UTF-8", b"SELECT '\xff\xfe';\n"),
 ("BOM after a blank first line kept", b"\n\xef\xbb\xbfSELECT 1;\n"),
 ("tabs and mixed endings", b"\tSELECT 1;\r\n\tSELECT 2;\n\tSELECT 3;\r"),
]

def lit(data):
    out=''
    for b in data:
        if 32 <= b < 127 and b not in (34, 92): out += chr(b)
        else: out += '\\x%02x' % b
    return out
for name, data in cases:
    print('    ("%s", b"%s", %d),' % (name, lit(data), checksum(data)))
