#!/usr/bin/env python3
"""Every registered op, built through the C API from Python (ctypes), as a generated binding would: the ops and
their attributes come from the C API's own listing (vkt_op_*), and each is built with vkt_model_op from a small
recipe of input shapes and the attributes that have no default. An op the listing has but this file has no recipe
for fails the test, so a new registry entry cannot stay unreachable from C. No device is needed.

usage: capi_ops.py LIBVKTRAIN_C_SO
"""
import ctypes as C
import json
import sys

OK, ERROR, INVALID = 0, 1, 2
F32, I32 = 0, 1
KINDS = {0: "integer", 1: "real", 2: "flag", 3: "shape"}


class Attr(C.Structure):
    _fields_ = [("name", C.c_char_p), ("value", C.c_double), ("shape", C.POINTER(C.c_int64)), ("rank", C.c_size_t)]


class OpInfo(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("name", C.c_char_p), ("doc", C.c_char_p), ("category", C.c_char_p),
                ("input_count", C.c_size_t), ("attr_count", C.c_size_t), ("loss", C.c_int32),
                ("inference_only", C.c_int32)]


class OpAttrInfo(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("name", C.c_char_p), ("kind", C.c_int), ("min", C.c_double),
                ("max", C.c_double), ("min_open", C.c_int32), ("max_open", C.c_int32), ("required", C.c_int32),
                ("optional", C.c_int32), ("has_default", C.c_int32), ("default_value", C.c_double),
                ("default_from", C.c_char_p), ("doc", C.c_char_p)]


class NodeInfo(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("op", C.c_char_p), ("name", C.c_char_p), ("input_count", C.c_size_t),
                ("rank", C.c_size_t), ("type", C.c_int)]


def F(*shape):
    return ("f32", list(shape))


def I(*shape):
    return ("i32", list(shape))


def OP(name, inputs, attrs):
    return ("op", name, inputs, attrs)


# Per op: its inputs (new model inputs of these per-sample shapes, or an op built first) and the attributes without
# a default (plus any whose default would not fit these shapes).
RECIPES = {
    "linear": ([F(5)], {"out": 3}),
    "conv2d": ([F(4, 7, 7)], {"out": 6, "groups": 2}),
    "max_pool2d": ([F(2, 6, 6)], {}),
    "avg_pool2d": ([F(2, 6, 6)], {"kernel_h": 3, "stride_h": 1, "pad_h": 1}),
    "batch_norm2d": ([F(3, 4, 4)], {}),
    "adaptive_avg_pool2d": ([F(3, 5, 7)], {"out_h": 2, "out_w": 3}),
    "channel_mul": ([F(3, 4, 4), F(3, 1, 1)], {}),
    "relu": ([F(5)], {}),
    "gelu": ([F(5)], {}),
    "gelu_tanh": ([F(5)], {}),
    "silu": ([F(5)], {}),
    "relu6": ([F(5)], {}),
    "hardswish": ([F(5)], {}),
    "hardsigmoid": ([F(5)], {}),
    "add": ([F(5), F(5)], {}),
    "dropout": ([F(5)], {"p": 0.5}),
    "flatten": ([F(2, 3)], {}),
    "reshape": ([F(2, 6)], {"shape": [3, -1]}),
    "transpose": ([F(2, 3)], {"dim0": 0, "dim1": 1}),
    "slice": ([F(2, 6)], {"dim": 1, "start": 1, "end": 4}),
    "layer_norm": ([F(4, 5)], {}),
    "rms_norm": ([F(4, 5)], {}),
    "softmax": ([F(5)], {}),
    "self_attention": ([F(4, 12)], {"heads": 2}),
    "attention": ([F(4, 12), F(4, 6), F(4, 6)], {"heads": 4, "kv_heads": 2}),
    "cross_entropy": ([F(5), I()], {}),
    "mse_loss": ([F(5), F(5)], {}),
    "embedding": ([I(4)], {"num_embeddings": 10, "dim": 3}),
    "position_embedding": ([F(4, 3)], {"max_positions": 8}),
    "linear_tied": ([F(4, 3), OP("embedding", [I(4)], {"num_embeddings": 10, "dim": 3})], {}),
    "cached_attention": ([F(1, 12), I(1)], {"heads": 2, "max_positions": 8}),
    "cached_rotary_attention": ([F(1, 8), F(1, 4), F(1, 4), I(1)], {"heads": 2, "kv_heads": 1, "max_positions": 8}),
    "rotary": ([F(4, 12)], {"heads": 2}),
    "mul": ([F(5), F(5)], {}),
}


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def main():
    lib = C.CDLL(sys.argv[1])
    lib.vkt_last_error.restype = C.c_char_p
    lib.vkt_op_count.restype = C.c_size_t
    lib.vkt_model_op.argtypes = [C.c_void_p, C.c_char_p, C.POINTER(C.c_int32), C.c_size_t, C.POINTER(Attr),
                                 C.c_size_t, C.POINTER(C.c_int32)]

    def err():
        return lib.vkt_last_error().decode()

    def check(status, what):
        if status != OK:
            fail("%s returned %d: %s" % (what, status, err()))

    # ---- the listing ----
    ops = {}
    for i in range(lib.vkt_op_count()):
        info = OpInfo(struct_size=C.sizeof(OpInfo))
        check(lib.vkt_op_get(C.c_size_t(i), C.byref(info)), "vkt_op_get")
        name = info.name.decode()
        inputs = []
        for j in range(info.input_count):
            n = C.c_char_p()
            check(lib.vkt_op_input_name(C.c_size_t(i), C.c_size_t(j), C.byref(n)), "vkt_op_input_name")
            inputs.append(n.value.decode())
        attrs = []
        for j in range(info.attr_count):
            a = OpAttrInfo(struct_size=C.sizeof(OpAttrInfo))
            check(lib.vkt_op_attr(C.c_size_t(i), C.c_size_t(j), C.byref(a)), "vkt_op_attr")
            attrs.append({"name": a.name.decode(), "kind": KINDS[a.kind], "required": bool(a.required),
                          "default": a.default_value if a.has_default else None,
                          "default_from": a.default_from.decode() if a.default_from else None,
                          "doc": a.doc.decode()})
            if not a.doc:
                fail("%s.%s has no doc" % (name, attrs[-1]["name"]))
        if not info.doc or not info.category:
            fail("%s has no doc or category" % name)
        index = C.c_size_t()
        check(lib.vkt_op_find(name.encode(), C.byref(index)), "vkt_op_find")
        if index.value != i:
            fail("vkt_op_find(%s) = %d, not %d" % (name, index.value, i))
        ops[name] = {"inputs": inputs, "attrs": attrs, "loss": bool(info.loss)}
    print("%d ops listed: %s" % (len(ops), ", ".join(ops)))
    if len(ops) < 25:
        fail("the listing has only %d ops" % len(ops))
    if lib.vkt_op_get(C.c_size_t(len(ops)), C.byref(OpInfo(struct_size=C.sizeof(OpInfo)))) != INVALID:
        fail("an op index past the listing must be an invalid argument")
    if lib.vkt_op_find(b"no_such_op", C.byref(C.c_size_t())) != ERROR:
        fail("finding an unknown op must be an error")

    # The JSON listing says the same.
    raw = C.c_void_p()
    check(lib.vkt_ops_json(C.byref(raw)), "vkt_ops_json")
    listed = json.loads(C.cast(raw, C.c_char_p).value.decode())
    lib.vkt_free(raw)
    if [o["name"] for o in listed] != list(ops):
        fail("vkt_ops_json lists %s" % [o["name"] for o in listed])
    for o in listed:
        mine = ops[o["name"]]
        if o["inputs"] != mine["inputs"] or [a["name"] for a in o["attrs"]] != [a["name"] for a in mine["attrs"]]:
            fail("vkt_ops_json and vkt_op_* disagree on %s" % o["name"])
        for a, b in zip(o["attrs"], mine["attrs"]):
            if a.get("default") != b["default"] or a.get("default_from") != b["default_from"] or \
                    a["required"] != b["required"] or a["kind"] != b["kind"]:
                fail("vkt_ops_json and vkt_op_attr disagree on %s.%s" % (o["name"], a["name"]))

    missing = sorted(set(ops) - set(RECIPES))
    if missing:
        fail("no recipe for the registered op(s) %s: add one to RECIPES in %s" % (", ".join(missing), __file__))
    stale = sorted(set(RECIPES) - set(ops))
    if stale:
        fail("RECIPES names op(s) the C API does not list: %s" % ", ".join(stale))

    # ---- building every op ----
    def attr_array(attrs):
        arr = (Attr * max(1, len(attrs)))()
        keep = []
        for k, (key, value) in enumerate(attrs.items()):
            arr[k].name = key.encode()
            if isinstance(value, list):
                dims = (C.c_int64 * len(value))(*value)
                keep.append(dims)
                arr[k].shape = C.cast(dims, C.POINTER(C.c_int64))
                arr[k].rank = len(value)
            else:
                arr[k].value = float(value)
        return arr, keep

    def add_op(m, name, inputs, attrs):
        arr, keep = attr_array(attrs)
        ids = (C.c_int32 * max(1, len(inputs)))(*inputs)
        out = C.c_int32(-1)
        status = lib.vkt_model_op(m, name.encode(), ids, len(inputs), arr, len(attrs), C.byref(out))
        del keep
        return status, out.value

    def build(name, attrs):
        """A new model with the recipe's inputs and the op; returns (model, status, value)."""
        m = C.c_void_p()
        check(lib.vkt_model_create(C.byref(m)), "vkt_model_create")
        inputs = []

        def make(spec):
            if spec[0] == "op":
                sub_inputs = [make(s) for s in spec[2]]
                status, v = add_op(m, spec[1], sub_inputs, spec[3])
                check(status, "%s's input %s" % (name, spec[1]))
                return v
            shape = (C.c_int64 * max(1, len(spec[1])))(*spec[1])
            v = C.c_int32()
            check(lib.vkt_model_input(m, ("in%d" % len(inputs)).encode(), shape, C.c_size_t(len(spec[1])),
                                      F32 if spec[0] == "f32" else I32, C.byref(v)), "vkt_model_input")
            inputs.append(v.value)
            return v.value

        values = [make(s) for s in RECIPES[name][0]]
        status, v = add_op(m, name, values, attrs)
        return m, status, v

    def to_json(m):
        raw = C.c_void_p()
        check(lib.vkt_model_to_json(m, C.byref(raw)), "vkt_model_to_json")
        text = C.cast(raw, C.c_char_p).value.decode()
        lib.vkt_free(raw)
        return text

    for name, op in ops.items():
        given = RECIPES[name][1]
        m, status, v = build(name, given)
        if status != OK:
            fail("%s: vkt_model_op returned %d: %s" % (name, status, err()))
        count = C.c_size_t()
        check(lib.vkt_model_node_count(m, C.byref(count)), "node count")
        node = NodeInfo(struct_size=C.sizeof(NodeInfo))
        check(lib.vkt_model_node(m, v, C.byref(node)), "vkt_model_node")
        if v != count.value - 1 or node.op.decode() != name:
            fail("%s: value %d is node '%s' of %d" % (name, v, node.op.decode(), count.value))
        dims, rank = (C.c_int64 * 8)(), C.c_size_t()
        check(lib.vkt_model_value_shape(m, v, dims, C.c_size_t(8), C.byref(rank)), "vkt_model_value_shape")
        shape = [dims[i] for i in range(rank.value)]
        if op["loss"] != (rank.value == 0):
            fail("%s: output shape %s" % (name, shape))
        text = to_json(m)
        back = C.c_void_p()
        check(lib.vkt_model_from_json(text.encode(), C.byref(back)), "%s: vkt_model_from_json" % name)
        if to_json(back) != text:
            fail("%s: the JSON does not read back to itself" % name)
        lib.vkt_model_destroy(back)

        # Every attribute given explicitly (defaults from the listing) builds the same model.
        explicit = dict(given)
        for a in op["attrs"]:
            if a["name"] in explicit:
                continue
            if a["default"] is not None:
                explicit[a["name"]] = a["default"]
            elif a["default_from"]:
                explicit[a["name"]] = explicit[a["default_from"]]
            elif a["required"]:
                fail("%s: attribute %s has no default and the recipe gives none" % (name, a["name"]))
        m2, status, _ = build(name, explicit)
        check(status, "%s with every attribute given" % name)
        if to_json(m2) != text:
            fail("%s: the listing's defaults build another model:\n%s\n%s" % (name, to_json(m2), text))
        lib.vkt_model_destroy(m2)

        # A required attribute left out is refused naming it; so is one the op does not have.
        for a in op["attrs"]:
            if not a["required"]:
                continue
            m3, status, _ = build(name, {k: x for k, x in given.items() if k != a["name"]})
            if status != ERROR or ("'%s'" % a["name"]) not in err():
                fail("%s without %s: status %d, %s" % (name, a["name"], status, err()))
            lib.vkt_model_destroy(m3)
        m4, status, _ = build(name, dict(given, no_such_attribute=1))
        if status != ERROR or "unknown attribute 'no_such_attribute'" not in err():
            fail("%s with an unknown attribute: status %d, %s" % (name, status, err()))
        lib.vkt_model_destroy(m4)
        lib.vkt_model_destroy(m)
        print("built %-20s -> %s" % (name, shape))

    # The contract for malformed calls: null pointers are invalid arguments, an unknown op an error naming it.
    m = C.c_void_p()
    check(lib.vkt_model_create(C.byref(m)), "vkt_model_create")
    if lib.vkt_model_op(m, None, None, 0, None, 0, None) != INVALID:
        fail("a null op name must be an invalid argument")
    if lib.vkt_model_op(m, b"linear", None, 1, None, 0, None) != INVALID:
        fail("null inputs with input_count 1 must be an invalid argument")
    if lib.vkt_model_op(m, b"no_such_op", None, 0, None, 0, None) != ERROR or "unknown op 'no_such_op'" not in err():
        fail("an unknown op must be an error naming it: %s" % err())
    if lib.vkt_model_op(m, b"relu", None, 0, None, 0, None) != ERROR or "relu takes 1 input(s) (x), got 0" not in err():
        fail("a wrong number of inputs must be an error naming the op's inputs: %s" % err())
    lib.vkt_model_destroy(m)
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
