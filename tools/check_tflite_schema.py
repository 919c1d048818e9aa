"""Checks bindings generated from a TFLite schema.fbs against LiteRT's own.

    python tools/check_tflite_schema.py OURS_schema_generated.py LITERT_schema_py_generated.py

OURS is `flatc --python --gen-onefile` output for the schema used by
tools/gen_tflite_schema.sh; LITERT is `ai_edge_litert/schema_py_generated.py` from the
ai-edge-litert wheel. Every table field's vtable offset and every enum value present in both
must agree (LiteRT's may have newer additions), so files written with our bindings read the
same in LiteRT.
"""
import re, sys
def extract(path):
    src = open(path).read()
    out = {}
    cls = None
    for line in src.splitlines():
        m = re.match(r'class (\w+)\(object\):', line)
        if m: cls = m.group(1); continue
        m = re.match(r'\s+def (\w+)\(self', line)
        if m: meth = m.group(1); continue
        m = re.search(r'self\._tab\.Offset\((\d+)\)', line)
        if m and cls: out[(cls, meth)] = int(m.group(1))
        m = re.match(r'\s+(\w+) = (-?\d+)$', line)
        if m and cls: out[(cls, m.group(1))] = int(m.group(2))
    return out
a = extract(sys.argv[1]); b = extract(sys.argv[2])
missing = [k for k in a if k not in b]
diff = [(k, a[k], b[k]) for k in a if k in b and a[k] != b[k]]
print("official entries", len(a), "mine", len(b), "missing", len(missing), "diff", len(diff))
print("only in LiteRT (newer schema additions):", missing[:20])
print("disagreements:", diff[:20])
sys.exit(1 if diff else 0)
