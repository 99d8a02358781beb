// The interpreter inside the plugin: found through the bundle's config, started once and lazily,
// isolated from the host's environment, never finalised; frames reach kwaflux_ofx.hosts.ofx.entry
// as numpy views of the host's buffers. Where the host runs another Python, or the config asks
// for it, frames go to the render worker process instead (worker_client.cpp).
#include <Python.h>
// pybind11 after Python.h, as its docs require.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "python_host.h"
#include "worker_client.h"

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <mutex>
#include <sstream>

namespace py = pybind11;

namespace kwaflux {
namespace {

struct Config {
  std::string bundle_dir, config_path, python, venv, log_dir;
  std::vector<std::string> pythonpath;
  std::string isolated;       // "yes"/"no" from kwaflux.cfg's isolated (KWAFLUX_OFX_ISOLATED wins)
  std::string isolated_from;  // where that came from, for the doctor and the log
  worker::Settings worker;
};

// Worker: frames go to the render worker; no Python symbol is ever touched in this process.
enum class State { NotStarted, Started, Ready, Refused, Worker };

std::mutex g_mutex;  // guards start-up and the fields below
State g_state = State::NotStarted;
std::string g_refusal;        // why Python will never run in this process
std::string g_mode_reason;    // why this process renders in-process or through the worker
PyObject* g_entry = nullptr;  // kwaflux_ofx.hosts.ofx.entry, kept for the life of the process
bool g_reused_host_python = false;
Config g_config;

std::mutex g_log_mutex;  // guards g_log_dir and the log file
std::string g_log_dir;   // set once the config is read; render threads log concurrently

void set_log_dir(const std::string& dir) {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  g_log_dir = dir;
}

bool is_file(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
bool is_dir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
std::string parent(const std::string& p) {
  size_t k = p.find_last_of('/');
  return k == std::string::npos ? "." : k == 0 ? "/" : p.substr(0, k);
}
std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// The bundle directory, from where the dynamic loader found this binary.
std::string bundle_dir() {
  Dl_info info{};
  if (!dladdr(reinterpret_cast<void*>(&bundle_dir), &info) || !info.dli_fname) return "";
  char resolved[4096];
  std::string bin = realpath(info.dli_fname, resolved) ? resolved : info.dli_fname;
  return parent(parent(parent(bin)));  // NAME.ofx.bundle/Contents/Linux-x86-64/NAME.ofx
}

std::string default_log_dir() {
  if (const char* d = std::getenv("KWAFLUX_LOG_DIR")) return d;
  if (const char* d = std::getenv("XDG_STATE_HOME")) return std::string(d) + "/kwaflux";
  if (const char* h = std::getenv("HOME")) return std::string(h) + "/.local/state/kwaflux";
  return "/tmp/kwaflux-" + std::to_string(getuid());
}

// Contents/Resources/kwaflux.cfg: "key = value" lines written by `kwaflux ofx install` (or the
// build). Without it, a bundle installed inside a venv (<venv>/share/kwaflux/) uses that venv.
Config load_config() {
  Config c;
  c.bundle_dir = bundle_dir();
  c.config_path = c.bundle_dir + "/Contents/Resources/kwaflux.cfg";
  std::ifstream f(c.config_path);
  std::string line;
  while (std::getline(f, line)) {
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
    if (key == "python")
      c.python = value;
    else if (key == "pythonpath")
      c.pythonpath.push_back(value);
    else if (key == "log_dir")
      c.log_dir = value;
    else if (key == "isolated")
      c.isolated = value, c.isolated_from = "isolated = " + value + " in " + c.config_path;
    else if (key == "worker_timeout")
      c.worker.timeout_s = std::atof(value.c_str());
    else if (key == "worker_module")
      c.worker.module = value;
    else if (key == "env" && value.find('=') != std::string::npos)
      c.worker.env.push_back(value);
  }
  if (!f.is_open()) c.config_path.clear();
  if (const char* env = std::getenv("KWAFLUX_OFX_PYTHON")) c.python = env;
  if (c.python.empty()) {
    std::string guess = parent(parent(parent(c.bundle_dir))) + "/bin/python";
    if (is_file(guess)) c.python = guess;
  }
  c.venv = c.python.empty() ? "" : parent(parent(c.python));
  if (c.log_dir.empty() || std::getenv("KWAFLUX_LOG_DIR")) c.log_dir = default_log_dir();
  if (const char* env = std::getenv("KWAFLUX_OFX_ISOLATED"); env && *env) {
    c.isolated = env;
    c.isolated_from = std::string("KWAFLUX_OFX_ISOLATED=") + env;
  }
  if (const char* env = std::getenv("KWAFLUX_OFX_WORKER_TIMEOUT"); env && std::atof(env) > 0)
    c.worker.timeout_s = std::atof(env);
  if (c.worker.timeout_s <= 0) c.worker.timeout_s = 120;
  c.worker.python = c.python;
  c.worker.pythonpath = c.pythonpath;
  c.worker.log_dir = c.log_dir;
  return c;
}

bool truthy(const std::string& v) { return v == "1" || v == "yes" || v == "true" || v == "on"; }

std::string site_packages(const Config& c) {
  return c.venv + "/lib/python" + std::to_string(PY_MAJOR_VERSION) + "." +
         std::to_string(PY_MINOR_VERSION) + "/site-packages";
}

std::string first_line(const std::string& s) {
  std::string t = trim(s);
  size_t nl = t.find('\n');
  return nl == std::string::npos ? t : t.substr(0, nl);
}

// The Python error in flight as (one line for the user, full traceback for the log). GIL held.
std::pair<std::string, std::string> describe_python_error(py::error_already_set& e) {
  std::string line, full;
  try {
    py::object type_name = e.type().attr("__name__");
    line = first_line(py::str(e.value()).cast<std::string>());
    std::string tname = type_name.cast<std::string>();
    if (tname != "KwafluxError" && tname != "ModelError" && tname != "MediaError")
      line = tname + ": " + line;
    py::object lines =
        py::module_::import("traceback").attr("format_exception")(e.type(), e.value(), e.trace());
    full = py::str("").attr("join")(lines).cast<std::string>();
  } catch (...) {
    line = e.what();
    full = e.what();
  }
  return {line, full};
}

// With the GIL held: make the venv and extra paths importable, import the entry module.
std::string import_entry(const Config& c) {
  static bool paths_added = false;  // a failed import is retried per frame: add paths once
  try {
    if (!paths_added) {
      py::module_ sys = py::module_::import("sys");
      if (g_reused_host_python) {
        // The host's interpreter has its own sys.prefix: add the venv the config names.
        py::module_::import("site").attr("addsitedir")(site_packages(c));
      }
      py::list path = sys.attr("path");
      for (auto it = c.pythonpath.rbegin(); it != c.pythonpath.rend(); ++it) path.insert(0, *it);
      paths_added = true;
    }
    py::module_ entry = py::module_::import("kwaflux_ofx.hosts.ofx.entry");
    entry.attr("configure_logging")(c.log_dir + "/ofx.log");
    g_entry = entry.release().ptr();
    return "";
  } catch (py::error_already_set& e) {
    auto [line, full] = describe_python_error(e);
    log_line("cannot import kwaflux_ofx.hosts.ofx.entry with " + c.python + ":\n" + full);
    return "cannot import kwaflux_ofx with " + c.python + ": " + line;
  }
}

// Starts (or adopts) the interpreter once. Returns "" when ofx_entry is ready. g_mutex held.
std::string ensure_python_locked() {
  if (g_state == State::Ready || g_state == State::Worker) return "";
  if (g_state == State::Refused) return g_refusal;
  if (g_state == State::NotStarted) {
    g_config = load_config();
    const Config& c = g_config;
    set_log_dir(c.log_dir);
    std::string where = c.config_path.empty()
                            ? "no " + c.bundle_dir + "/Contents/Resources/kwaflux.cfg"
                            : c.config_path;
    if (c.python.empty()) return "no Python configured (" + where + "); run `kwaflux ofx install`";
    if (!is_file(c.python) || access(c.python.c_str(), X_OK) != 0)
      return "Python " + c.python + " not found (" + where + "); run `kwaflux ofx install`";
    if (!is_dir(site_packages(c)))
      return "venv " + c.venv + " has no " + site_packages(c) + ": this plugin needs Python " +
             std::to_string(PY_MAJOR_VERSION) + "." + std::to_string(PY_MINOR_VERSION);

    // A Python the host already loaded globally wins symbol lookup: only the same version is
    // safe in-process. Another one means the worker, decided before any Python symbol is used.
    using VersionFn = const char* (*)();
    if (auto version = reinterpret_cast<VersionFn>(dlsym(RTLD_DEFAULT, "Py_GetVersion"))) {
      std::string running = version();
      std::string ours = std::to_string(PY_MAJOR_VERSION) + "." + std::to_string(PY_MINOR_VERSION);
      std::string theirs = running.substr(0, running.find_first_not_of("0123456789."));
      if (theirs != ours && theirs.rfind(ours + ".", 0) != 0) {
        g_state = State::Worker;
        g_mode_reason = "this host already runs Python " + theirs + " in-process (Kwaflux needs " +
                        ours + "): frames render in a separate worker process";
        log_line(g_mode_reason);
        return "";
      }
    }
    if (truthy(c.isolated)) {
      g_state = State::Worker;
      g_mode_reason = "isolated by " + c.isolated_from + ": frames render in a worker process";
      log_line(g_mode_reason);
      return "";
    }

    // numpy's extension modules do not link libpython: make its symbols global first.
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(&Py_IsInitialized), &info) && info.dli_fname)
      dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL);

    if (Py_IsInitialized()) {
      g_reused_host_python = true;
    } else {
      // Isolated: the host's PYTHONPATH, PYTHONHOME, PYTHONNOUSERSITE (Natron sets them for its
      // own Python) and user site change nothing; the paths come from kwaflux.cfg alone.
      PyConfig config;
      PyConfig_InitIsolatedConfig(&config);
      config.install_signal_handlers = 0;  // the host owns signals
      config.parse_argv = 0;
      PyStatus status = PyConfig_SetBytesString(&config, &config.program_name, c.python.c_str());
      if (!PyStatus_Exception(status)) status = Py_InitializeFromConfig(&config);
      PyConfig_Clear(&config);
      if (PyStatus_Exception(status)) {
        g_state = State::Refused;
        g_refusal = std::string("Python failed to start from ") + c.python + ": " +
                    (status.err_msg ? status.err_msg : "unknown error");
        log_line(g_refusal);
        return g_refusal;
      }
      // Give the GIL back; every render takes it with PyGILState_Ensure.
      PyEval_SaveThread();
    }
    // Python now holds pointers into this binary (pybind11's internals, capsule destructors):
    // keep it mapped even if the host unloads the plugin.
    Dl_info self{};
    if (dladdr(reinterpret_cast<void*>(&bundle_dir), &self) && self.dli_fname)
      dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
    g_state = State::Started;
    g_mode_reason = g_reused_host_python ? "the host runs Python " + std::string(Py_GetVersion()) +
                                               ", the version Kwaflux needs"
                                         : "the default where the host runs no Python of its own";
    log_line(std::string(g_reused_host_python ? "adopted the host's Python " : "started Python ") +
             Py_GetVersion() + " for " + c.python);
  }
  // Started: (re)try the import; a fixed venv works without restarting the host.
  PyGILState_STATE gil = PyGILState_Ensure();
  std::string err = import_entry(g_config);
  PyGILState_Release(gil);
  if (err.empty()) g_state = State::Ready;
  return err;
}

std::string ensure_python() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return ensure_python_locked();
}

py::dtype dtype_for(const std::string& depth) {
  if (depth == kOfxBitDepthByte) return py::dtype("uint8");
  if (depth == kOfxBitDepthShort) return py::dtype("uint16");
  if (depth == kOfxBitDepthHalf) return py::dtype("float16");
  if (depth == kOfxBitDepthFloat) return py::dtype("float32");
  throw std::runtime_error("unsupported pixel depth " + depth);
}

// A top-down H x W x C view of a host image: row 0 is the picture's top row (y2 - 1). OFX rows
// count up from y1, so the view starts at the last row and steps back by rowBytes.
py::array view_of(const HostImage& im, bool writeable) {
  py::dtype dt = dtype_for(im.depth);
  const py::ssize_t w = std::max(0, im.bounds.x2 - im.bounds.x1);
  const py::ssize_t h = std::max(0, im.bounds.y2 - im.bounds.y1);
  const py::ssize_t item = dt.itemsize();
  char* top = static_cast<char*>(im.data) + (h > 0 ? (h - 1) * im.row_bytes : 0);
  // The capsule is the array's base: without a base pybind11 would copy the pixels.
  py::capsule base(top, [](void*) {});
  py::array a(dt, {h, w, py::ssize_t(im.channels)},
              {py::ssize_t(-im.row_bytes), item * im.channels, item}, top, base);
  if (!writeable) a.attr("flags").attr("writeable") = false;
  return a;
}

py::tuple rect(const OfxRectI& r) { return py::make_tuple(r.x1, r.y1, r.x2, r.y2); }

}  // namespace

std::string log_line(const std::string& line) {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  std::string dir = g_log_dir.empty() ? default_log_dir() : g_log_dir;
  // mkdir -p
  for (size_t k = 1; k <= dir.size(); ++k)
    if (k == dir.size() || dir[k] == '/') mkdir(dir.substr(0, k).c_str(), 0755);
  std::string path = dir + "/ofx.log";
  if (FILE* f = std::fopen(path.c_str(), "a")) {
    std::time_t now = std::time(nullptr);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", std::localtime(&now));
    std::fprintf(f, "%s [%d] %s\n", stamp, int(getpid()), line.c_str());
    std::fclose(f);
  }
  return path;
}

namespace {

// What Python gets beside the pixels: the call's geometry and every parameter by name.
py::dict params_of(const RenderCall& call) {
  py::dict params;
  params["effect"] = call.effect;
  params["window"] = rect(call.window);
  params["src_bounds"] = rect(call.src.bounds);
  params["dst_bounds"] = rect(call.dst.bounds);
  params["render_scale"] = py::make_tuple(call.render_scale[0], call.render_scale[1]);
  params["time"] = call.time;
  params["host_multires"] = call.host_multires;
  params["host_name"] = call.host_name;
  params["premultiplication"] = call.src.premultiplication;
  for (const ParamValue& p : call.params) {
    switch (p.kind) {
      case ParamValue::Double:
        params[p.name.c_str()] = p.d;
        break;
      case ParamValue::Int:
        params[p.name.c_str()] = p.i;
        break;
      case ParamValue::Bool:
        params[p.name.c_str()] = bool(p.i);
        break;
      case ParamValue::String:
        params[p.name.c_str()] = p.s;
        break;
    }
  }
  return params;
}

// Runs `body` under the GIL with Python errors turned into one line (details to the log).
template <typename Body>
std::string with_python(const char* what, Body body) {
  std::string err;
  PyGILState_STATE gil = PyGILState_Ensure();
  {
    // Every Python object lives in this scope, so all are released before the GIL is.
    try {
      body();
    } catch (py::error_already_set& e) {
      auto [line, full] = describe_python_error(e);
      log_line(std::string(what) + " failed: " + full);
      err = line;
    } catch (const std::exception& e) {
      err = e.what();
      log_line(std::string(what) + " failed: " + err);
    }
  }
  PyGILState_Release(gil);
  return err;
}

}  // namespace

bool use_worker() { return g_state == State::Worker; }

std::string render(const RenderCall& call) {
  if (std::string err = ensure_python(); !err.empty()) return err;
  if (use_worker()) return worker::render(g_config.worker, call, nullptr);
  static const bool timing = std::getenv("KWAFLUX_OFX_TIMING") != nullptr;
  auto t0 = std::chrono::steady_clock::now();
  double engine_s = -1;
  std::chrono::steady_clock::time_point t1, t2;
  std::string err = with_python("render", [&] {
    t1 = std::chrono::steady_clock::now();
    py::array src = view_of(call.src, false);
    py::array dst = view_of(call.dst, true);
    // Read-only views like the source's, dropped with this scope: before the host's images.
    py::list neighbours;
    for (const auto& [offset, image] : call.neighbours)
      neighbours.append(py::make_tuple(offset, view_of(image, false)));
    py::object result = py::handle(g_entry).attr("render")(src, dst, params_of(call),
                                                           py::arg("neighbours") = neighbours);
    if (!result.is_none()) engine_s = result.cast<double>();
    t2 = std::chrono::steady_clock::now();
  });
  if (timing && err.empty()) {
    auto us = [](auto a, auto b) {
      return std::chrono::duration<double, std::micro>(b - a).count();
    };
    std::fprintf(stderr, "kwaflux-timing gil_us=%.1f python_us=%.1f engine_us=%.1f\n", us(t0, t1),
                 us(t1, t2), engine_s * 1e6);
  }
  return err;
}

std::string measure(const RenderCall& call, std::string* text) {
  if (std::string err = ensure_python(); !err.empty()) return err;
  if (use_worker()) return worker::measure(g_config.worker, call, text);
  return with_python("measure", [&] {
    py::array src = view_of(call.src, false);
    *text = py::handle(g_entry).attr("measure")(src, params_of(call)).cast<std::string>();
  });
}

std::string doctor_report(bool* ok) {
  std::ostringstream out;
  std::string err = ensure_python();
  const Config& c = g_config;
  out << "bundle: " << c.bundle_dir << "\n";
  out << "config: " << (c.config_path.empty() ? "(none)" : c.config_path) << "\n";
  out << "python: " << (c.python.empty() ? "(none)" : c.python) << "\n";
  out << "log: " << c.log_dir << "/ofx.log\n";
  if (!err.empty()) {
    out << "FAILED: " << err;
    *ok = false;
    return out.str();
  }
  out << "mode: " << (use_worker() ? "worker" : "in-process") << " (" << g_mode_reason << ")\n";
  if (use_worker()) {
    std::string text;
    std::string werr = worker::doctor(c.worker, &text);
    out << "interpreter: the render worker's, " << c.python << " -I\n" << text;
    if (!werr.empty()) out << "FAILED: " << werr;
    *ok = werr.empty();
    return out.str();
  }
  PyGILState_STATE gil = PyGILState_Ensure();
  {
    try {
      out << "interpreter: " << (g_reused_host_python ? "the host's, " : "embedded, ")
          << Py_GetVersion() << "\n";
      out << py::handle(g_entry).attr("doctor")().cast<std::string>();
      *ok = true;
    } catch (py::error_already_set& e) {
      out << "FAILED: " << describe_python_error(e).first;
      *ok = false;
    }
  }
  PyGILState_Release(gil);
  return out.str();
}

void unload() {
  // Only the worker can go: an in-process interpreter is never finalised.
  worker::shutdown();
}

}  // namespace kwaflux
