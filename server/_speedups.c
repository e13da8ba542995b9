/*
 * server/_speedups.c: optional C version of server.frames.apply_mask.
 *
 * RFC 6455 5.3: "Octet i of the transformed data is the XOR of octet i of the original
 * data with octet at index i modulo 4 of the masking key." Done 8 bytes at a time with
 * the key repeated twice (8 is a multiple of 4, so the key stays aligned), then byte by
 * byte for the tail. server.frames falls back to its pure-Python version when this
 * module is not built; both must return the same bytes (tests/server/test_frames.py).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static PyObject *
apply_mask(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data, mask;
    PyObject *result = NULL;

    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "apply_mask() takes exactly 2 arguments");
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &mask, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    if (mask.len != 4) {
        PyErr_SetString(PyExc_ValueError, "mask must be 4 bytes");
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, data.len);
    if (result == NULL) {
        goto done;
    }
    {
        const unsigned char *src = (const unsigned char *)data.buf;
        const unsigned char *key = (const unsigned char *)mask.buf;
        unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(result);
        Py_ssize_t n = data.len, i = 0;
        unsigned char key8[8];
        uint64_t word, key64;

        memcpy(key8, key, 4);
        memcpy(key8 + 4, key, 4);
        memcpy(&key64, key8, 8);  /* memcpy: no alignment or endianness assumption */
        for (; i + 8 <= n; i += 8) {
            memcpy(&word, src + i, 8);
            word ^= key64;
            memcpy(dst + i, &word, 8);
        }
        for (; i < n; i++) {
            dst[i] = src[i] ^ key[i & 3];
        }
    }
done:
    PyBuffer_Release(&mask);
    PyBuffer_Release(&data);
    return result;
}

/* XOR n bytes of src into dst with the key starting at key[phase]. */
static void
xor_into(unsigned char *dst, const unsigned char *src, Py_ssize_t n,
         const unsigned char *key, Py_ssize_t phase)
{
    unsigned char rot[4], key8[8];
    uint64_t word, key64;
    Py_ssize_t i = 0;

    for (int j = 0; j < 4; j++) {
        rot[j] = key[(phase + j) & 3];
    }
    memcpy(key8, rot, 4);
    memcpy(key8 + 4, rot, 4);
    memcpy(&key64, key8, 8);
    for (; i + 8 <= n; i += 8) {
        memcpy(&word, src + i, 8);
        word ^= key64;
        memcpy(dst + i, &word, 8);
    }
    for (; i < n; i++) {
        dst[i] = src[i] ^ rot[i & 3];
    }
}

/*
 * apply_mask_join(pieces, mask) -> bytes: the same as apply_mask(b"".join(pieces), mask),
 * without the intermediate joined copy: a large frame arrives in many reads, and each
 * copy of a 1 MiB payload costs as much as unmasking it.
 */
static PyObject *
apply_mask_join(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *seq, *result = NULL;
    Py_buffer mask;
    Py_ssize_t total = 0, count, offset = 0;

    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "apply_mask_join() takes exactly 2 arguments");
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &mask, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (mask.len != 4) {
        PyErr_SetString(PyExc_ValueError, "mask must be 4 bytes");
        PyBuffer_Release(&mask);
        return NULL;
    }
    seq = PySequence_Fast(args[0], "apply_mask_join() needs a sequence of bytes");
    if (seq == NULL) {
        PyBuffer_Release(&mask);
        return NULL;
    }
    count = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, k);
        if (!PyBytes_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "apply_mask_join() pieces must be bytes");
            goto done;
        }
        total += PyBytes_GET_SIZE(item);
    }
    result = PyBytes_FromStringAndSize(NULL, total);
    if (result == NULL) {
        goto done;
    }
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, k);
        Py_ssize_t n = PyBytes_GET_SIZE(item);
        xor_into((unsigned char *)PyBytes_AS_STRING(result) + offset,
                 (const unsigned char *)PyBytes_AS_STRING(item), n,
                 (const unsigned char *)mask.buf, offset & 3);
        offset += n;
    }
done:
    Py_DECREF(seq);
    PyBuffer_Release(&mask);
    return result;
}

static PyMethodDef speedups_methods[] = {
    {"apply_mask_join", (PyCFunction)(void (*)(void))apply_mask_join, METH_FASTCALL,
     "apply_mask_join(pieces, mask) -> bytes: apply_mask(b''.join(pieces), mask), one copy."},
    {"apply_mask", (PyCFunction)(void (*)(void))apply_mask, METH_FASTCALL,
     "apply_mask(data, mask) -> bytes: XOR data with the 4-byte mask repeated."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "server._speedups",
    "C accelerators for server.frames (optional).",
    -1,
    speedups_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&speedups_module);
}
