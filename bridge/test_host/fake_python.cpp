// Stands in for a host's own, different Python (say a 2.7 embedded in an old host) in the tests:
// the test host loads it globally before the plugin, as such a host would.
extern "C" {
__attribute__((visibility("default"))) const char* Py_GetVersion(void) {
  return "2.7.18 (fake host Python)";
}
__attribute__((visibility("default"))) int Py_IsInitialized(void) { return 1; }
__attribute__((visibility("default"))) void Py_InitializeEx(int) {}
__attribute__((visibility("default"))) void* PyEval_SaveThread(void) { return nullptr; }
}
