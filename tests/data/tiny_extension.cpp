// A minimal Python extension for the tests of latticeprune.kernel_build: it compiles in about a
// second (no torch headers), so builds can be started, killed and repeated in the default suite.
#include <Python.h>

#define TINY_CONCAT_(a, b) a##b
#define TINY_CONCAT(a, b) TINY_CONCAT_(a, b)
#define TINY_STRING_(a) #a
#define TINY_STRING(a) TINY_STRING_(a)

static PyObject* answer(PyObject*, PyObject*) { return PyLong_FromLong(42); }

static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, nullptr},
                                {nullptr, nullptr, 0, nullptr}};

static PyModuleDef definition = {PyModuleDef_HEAD_INIT, TINY_STRING(TORCH_EXTENSION_NAME),
                                 nullptr, -1, methods};

PyMODINIT_FUNC TINY_CONCAT(PyInit_, TORCH_EXTENSION_NAME)(void) {
  return PyModule_Create(&definition);
}
