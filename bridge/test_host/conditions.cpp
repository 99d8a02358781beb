// The real hosts' conditions for kwaflux-ofx-test-host (see conditions.h).
#include "conditions.h"

#include <dirent.h>
#include <dlfcn.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace host_conditions {

void start_host_python(const std::string& lib, bool natron_env) {
  if (natron_env) {
    // Natron points PYTHONPATH at its bundled Python's library: <prefix>/lib/python3.X.
    std::string dir = lib.substr(0, lib.find_last_of('/'));
    std::string name = lib.substr(lib.find_last_of('/') + 1);  // libpython3.10.so
    std::string ver = name.substr(3, name.find(".so") - 3);    // python3.10
    std::string path = dir + "/" + ver + ":" + dir + "/" + ver + "/site-packages";
    setenv("PYTHONPATH", path.c_str(), 1);
    setenv("PYTHONNOUSERSITE", "1", 1);
    std::printf("host: PYTHONPATH=%s PYTHONNOUSERSITE=1\n", path.c_str());
  }
  void* handle = dlopen(lib.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (!handle) {
    std::fprintf(stderr, "host: error: cannot load host python: %s\n", dlerror());
    std::exit(2);
  }
  using InitFn = void (*)(int);
  using SaveFn = void* (*)();
  using VersionFn = const char* (*)();
  auto init = reinterpret_cast<InitFn>(dlsym(handle, "Py_InitializeEx"));
  auto save = reinterpret_cast<SaveFn>(dlsym(handle, "PyEval_SaveThread"));
  auto version = reinterpret_cast<VersionFn>(dlsym(handle, "Py_GetVersion"));
  if (!init || !save) {
    std::fprintf(stderr, "host: error: %s lacks Py_InitializeEx/PyEval_SaveThread\n", lib.c_str());
    std::exit(2);
  }
  init(0);
  save();
  std::printf("host python %s\n", version ? version() : "?");
}

std::vector<int> child_pids() {
  std::vector<int> pids;
  const int self = getpid();
  DIR* proc = opendir("/proc");
  if (!proc) return pids;
  while (dirent* e = readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (*end || pid <= 0) continue;
    std::ifstream f(std::string("/proc/") + e->d_name + "/stat");
    std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    size_t close = stat.rfind(')');  // the command name may hold spaces and parentheses
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    char state = 0;
    int ppid = 0;
    rest >> state >> ppid;
    if (ppid == self && state != 'Z') pids.push_back(int(pid));
  }
  closedir(proc);
  return pids;
}

void signal_children(int sig, int at_frame) {
  for (int pid : child_pids()) {
    kill(pid, sig);
    std::printf("host: sent signal %d to worker pid %d at frame %d\n", sig, pid, at_frame);
  }
  std::fflush(stdout);
}

}  // namespace host_conditions
