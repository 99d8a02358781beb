// The plugin's side of the render worker: starts it lazily from the venv (python -I, an
// environment built from kwaflux.cfg, no inherited descriptors), hands it frames through one
// memfd mapped once per frame geometry, and turns its death, silence or a malformed reply into
// one failed frame. Renders through it run one at a time (the engine inside uses every core).
#include "worker_client.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <sstream>
#include <thread>

#include "ofx/ofx_abi.h"

extern char** environ;

namespace kwaflux::worker {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kMaxFailedStarts = 3;    // then wait kBackoffSeconds before the next try
constexpr int kBackoffSeconds = 60;    // a worker that dies at start-up is not restarted in a loop
constexpr size_t kMaxReply = 1 << 16;  // replies are a few lines
constexpr int kChildSocketFd = 3;      // where the worker finds its end of the socket
const char* const kEnvPassed[] = {     // the host's variables the worker may see; no PYTHON*
                                  "HOME",
                                  "USER",
                                  "LOGNAME",
                                  "LANG",
                                  "LC_ALL",
                                  "TMPDIR",
                                  "XDG_RUNTIME_DIR",
                                  "XDG_STATE_HOME",
                                  "CUDA_VISIBLE_DEVICES",
                                  "OMP_NUM_THREADS",
                                  "KWAFLUX_LOG_DIR",
                                  "KWAFLUX_OFX_TIMING"};

// ---------------------------------------------------------------- spawning
void high_fd_marker() {}  // an address inside this binary, for dladdr

// PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, and host render threads
// come and go: every worker is forked by this one thread, which lives as long as the process.
class Spawner {
 public:
  pid_t run(const std::function<pid_t()>& job) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!started_) {
      // The thread runs code of this binary until the process ends: keep it mapped even if
      // the host unloads the plugin.
      Dl_info self{};
      if (dladdr(reinterpret_cast<void*>(&high_fd_marker), &self) && self.dli_fname)
        dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
      std::thread([this] { loop(); }).detach();
      started_ = true;
    }
    job_ = &job;
    done_ = false;
    cv_.notify_all();
    cv_.wait(lock, [this] { return done_; });
    return result_;
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      cv_.wait(lock, [this] { return job_ != nullptr; });
      result_ = (*job_)();
      job_ = nullptr;
      done_ = true;
      cv_.notify_all();
    }
  }
  std::mutex mutex_;
  std::condition_variable cv_;
  const std::function<pid_t()>* job_ = nullptr;
  bool started_ = false, done_ = false;
  pid_t result_ = -1;
};
Spawner* g_spawner = new Spawner();  // never destroyed: its thread outlives static destruction

int high_fd(int fd) {  // moved above the descriptors the child rearranges, close-on-exec
  if (fd < 0) return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, 10);
  close(fd);
  return moved;
}

struct Child {
  pid_t pid = -1;
  int sock = -1;
};

// Starts the worker with vfork + exec: a host holding gigabytes of frames (Resolve) would pay
// fork()'s copy of its page tables, or fail it under strict overcommit. Everything the child
// needs is prepared before; between vfork and exec it makes raw system calls only, with every
// signal blocked until its handlers are back to default (the host's must not run in it).
Child spawn(const Settings& s, const std::string& worker_log, std::string* err) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    *err = std::string("cannot create the worker's socket: ") + std::strerror(errno);
    return {};
  }
  int parent_sock = sv[0], child_sock = high_fd(sv[1]);
  int log_fd = high_fd(open(worker_log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  int null_fd = high_fd(open("/dev/null", O_RDONLY | O_CLOEXEC));
  // python -I: no PYTHON* variable, no user site, no script folder on sys.path. The bootstrap
  // puts kwaflux.cfg's pythonpath first and reports an import failure as one line on the socket.
  std::string boot =
      "import sys\n"
      "sys.path[:0] = sys.argv[1:]\n"
      "del sys.argv[1:]\n"
      "try:\n"
      "    import importlib; worker = importlib.import_module(" +
      std::string("'") + s.module + "')\n" +
      "except BaseException as exc:\n"
      "    import socket\n"
      "    line = str(exc).strip().splitlines()[0] if str(exc).strip() else ''\n"
      "    text = 'cannot import kwaflux_ofx with ' + sys.executable + ': ' + "
      "type(exc).__name__ + ': ' + line\n"
      "    socket.socket(fileno=3).send(('status error\\ntext ' + text).encode())\n"
      "    raise\n"
      "worker.main(3)\n";
  std::vector<std::string> args = {s.python, "-I", "-c", boot};
  args.insert(args.end(), s.pythonpath.begin(), s.pythonpath.end());
  std::string venv_bin = s.python.substr(0, s.python.find_last_of('/'));
  std::vector<std::string> env = {"PATH=" + venv_bin + ":/usr/local/bin:/usr/bin:/bin",
                                  "KWAFLUX_OFX_WORKER_LOG=" + s.log_dir + "/ofx.log",
                                  "KWAFLUX_OFX_HOST_PID=" + std::to_string(getpid())};
  for (const char* name : kEnvPassed)
    if (const char* v = std::getenv(name)) env.push_back(std::string(name) + "=" + v);
  env.insert(env.end(), s.env.begin(), s.env.end());
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  long max_fd = sysconf(_SC_OPEN_MAX);
  if (max_fd <= 0 || max_fd > 65536) max_fd = 65536;

  sigset_t all, none, old;
  sigfillset(&all);
  sigemptyset(&none);
  struct sigaction dfl{};
  dfl.sa_handler = SIG_DFL;
  std::function<pid_t()> job = [&]() -> pid_t {
    const pid_t parent = getpid();
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = vfork();
    if (pid != 0) {
      pthread_sigmask(SIG_SETMASK, &old, nullptr);
      return pid;
    }
    // The child: die with the host (SIGKILL when this thread's process goes), keep only
    // stdin (/dev/null), stdout and stderr (the worker log) and the socket.
    for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &dfl, nullptr);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    setpgid(0, 0);  // its own process group: a Ctrl-C meant for the host does not hit it
    if (null_fd >= 0) dup2(null_fd, 0);
    if (log_fd >= 0) {
      dup2(log_fd, 1);
      dup2(log_fd, 2);
    }
    dup2(child_sock, kChildSocketFd);
    if (syscall(SYS_close_range, kChildSocketFd + 1, ~0U, 0) != 0)
      for (long fd = kChildSocketFd + 1; fd < max_fd; ++fd) close(int(fd));
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  };
  pid_t pid = g_spawner->run(job);
  close(child_sock);
  if (log_fd >= 0) close(log_fd);
  if (null_fd >= 0) close(null_fd);
  if (pid < 0) {
    *err = std::string("cannot start the render worker: ") + std::strerror(errno);
    close(parent_sock);
    return {};
  }
  return {pid, parent_sock};
}

std::string describe_status(int status) {
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* name = sig == SIGKILL   ? "SIGKILL"
                       : sig == SIGSEGV ? "SIGSEGV"
                       : sig == SIGABRT ? "SIGABRT"
                       : sig == SIGBUS  ? "SIGBUS"
                       : sig == SIGTERM ? "SIGTERM"
                                        : nullptr;
    return "was killed by signal " + std::to_string(sig) +
           (name ? std::string(" (") + name + ")" : "");
  }
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  return "ended";
}

// ---------------------------------------------------------------- the one worker
struct Arena {
  int fd = -1;
  void* map = nullptr;
  size_t size = 0;
  std::string key;  // the frame geometry it was made for
  int slots = 0;    // neighbour frames it has room for
  bool sent = false;
};

struct State {
  Child child;
  Arena arena;
  std::string log_path;
  int failed_starts = 0;
  Clock::time_point last_failed_start{};
  std::string last_start_error;
};

std::mutex g_mutex;  // one request at a time, and guards g_state
State g_state;

void free_arena() {
  Arena& a = g_state.arena;
  if (a.map) munmap(a.map, a.size);
  if (a.fd >= 0) close(a.fd);
  a = Arena();
}

// Waits for the child after its socket closed; SIGKILL if it lingers. Returns its fate.
std::string reap(bool kill_first) {
  Child& c = g_state.child;
  std::string fate = "ended";
  if (c.pid > 0) {
    if (kill_first) kill(c.pid, SIGKILL);
    int status = 0;
    pid_t r = 0;
    for (int k = 0; k < 200 && (r = waitpid(c.pid, &status, WNOHANG)) == 0; ++k) usleep(10000);
    if (r == 0) {
      kill(c.pid, SIGKILL);
      r = waitpid(c.pid, &status, 0);
    }
    if (r == c.pid) fate = describe_status(status);
  }
  if (c.sock >= 0) close(c.sock);
  c = Child();
  g_state.arena.sent = false;  // a new worker has not mapped it
  return fate;
}

bool send_msg(int sock, const std::string& body, int fd) {
  iovec iov{const_cast<char*>(body.data()), body.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  char control[CMSG_SPACE(sizeof(int))];
  if (fd >= 0) {
    std::memset(control, 0, sizeof control);
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cm), &fd, sizeof(int));
  }
  return sendmsg(sock, &msg, MSG_NOSIGNAL) == ssize_t(body.size());
}

enum class Got { Reply, Closed, Timeout };

Got recv_msg(int sock, double timeout_s, std::string* out) {
  auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return Got::Timeout;
    pollfd p{sock, POLLIN, 0};
    int r = poll(&p, 1, int(std::min<long long>(left.count(), 1 << 30)));
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) return Got::Timeout;
    std::string buf(kMaxReply, '\0');
    ssize_t n = recv(sock, buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Got::Closed;
    buf.resize(size_t(n));
    *out = std::move(buf);
    return Got::Reply;
  }
}

// A reply: lines of "key value"; "text" lines are kept in order.
struct Reply {
  std::string status;
  std::vector<std::string> text;
  std::string shape, dtype;
  double seconds = -1;
  long rss_kb = -1;
};
bool parse_reply(const std::string& body, Reply* r) {
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    size_t sp = line.find(' ');
    std::string key = line.substr(0, sp),
                value = sp == std::string::npos ? "" : line.substr(sp + 1);
    if (key == "status")
      r->status = value;
    else if (key == "text")
      r->text.push_back(value);
    else if (key == "shape")
      r->shape = value;
    else if (key == "dtype")
      r->dtype = value;
    else if (key == "seconds")
      r->seconds = std::atof(value.c_str());
    else if (key == "rss_kb")
      r->rss_kb = std::atol(value.c_str());
  }
  return r->status == "ok" || r->status == "error" || r->status == "ready";
}

std::string worker_log_note() { return "worker output: " + g_state.log_path; }

// Starts a worker unless one runs. "" when it answered "ready".
std::string ensure_worker(const Settings& s) {
  if (g_state.child.pid > 0) return "";
  g_state.log_path = s.log_dir + "/ofx-worker.log";
  if (g_state.failed_starts >= kMaxFailedStarts) {
    auto since =
        std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - g_state.last_failed_start);
    if (since.count() < kBackoffSeconds)
      return "the render worker failed to start " + std::to_string(g_state.failed_starts) +
             " times in a row (last: " + g_state.last_start_error + "); next try in " +
             std::to_string(kBackoffSeconds - since.count()) + " s";
  }
  log_line("starting the render worker: " + s.python + " -I -m " + s.module);
  std::string err;
  g_state.child = spawn(s, g_state.log_path, &err);
  std::string body;
  if (err.empty()) {
    Got got = recv_msg(g_state.child.sock, s.timeout_s, &body);
    Reply r;
    if (got == Got::Timeout) {
      err = "the render worker did not start within " + std::to_string(int(s.timeout_s)) +
            " s (worker_timeout in kwaflux.cfg, KWAFLUX_OFX_WORKER_TIMEOUT)";
      reap(true);
    } else if (got == Got::Closed) {
      err = "the render worker " + reap(false) + " while starting; " + worker_log_note();
    } else if (!parse_reply(body, &r) || r.status != "ready") {
      err = r.status == "error" && !r.text.empty() ? r.text[0]
                                                   : "the render worker's first reply is garbled";
      reap(true);
    } else {
      log_line("started the render worker pid " + std::to_string(g_state.child.pid) +
               (r.text.empty() ? "" : ": " + r.text[0]));
      g_state.failed_starts = 0;
      return "";
    }
  }
  g_state.failed_starts++;
  g_state.last_failed_start = Clock::now();
  g_state.last_start_error = err;
  log_line(err);
  return err;
}

// ---------------------------------------------------------------- frames in shared memory
int bytes_per_channel(const std::string& depth) {
  return depth == kOfxBitDepthByte ? 1 : depth == kOfxBitDepthFloat ? 4 : 2;
}
const char* dtype_of(const std::string& depth) {
  return depth == kOfxBitDepthByte    ? "uint8"
         : depth == kOfxBitDepthShort ? "uint16"
         : depth == kOfxBitDepthHalf  ? "float16"
                                      : "float32";
}
int width(const HostImage& im) { return std::max(0, im.bounds.x2 - im.bounds.x1); }
int height(const HostImage& im) { return std::max(0, im.bounds.y2 - im.bounds.y1); }
size_t packed_row(const HostImage& im) {
  return size_t(width(im)) * im.channels * bytes_per_channel(im.depth);
}
size_t packed_size(const HostImage& im) { return packed_row(im) * height(im); }
size_t aligned(size_t n) { return (n + 63) & ~size_t(63); }

// Where each image lives in the arena: src, then room for every neighbour slot, then dst.
struct Layout {
  size_t src = 0, dst = 0, total = 0, slot = 0;
  int slots = 0;
  std::string key;
};
// The arena's room for neighbours only grows within one geometry: a shorter window at a clip's
// ends reuses it.
Layout layout_for(const RenderCall& call) {
  Layout l;
  std::ostringstream k;
  k << width(call.src) << "x" << height(call.src) << "x" << call.src.channels << " "
    << call.src.depth << " -> " << width(call.dst) << "x" << height(call.dst);
  l.key = k.str();
  l.slots = int(call.neighbours.size());
  const Arena& a = g_state.arena;
  if (a.map && a.key == l.key) l.slots = std::max(l.slots, a.slots);
  l.slot = aligned(packed_size(call.src));
  l.dst = l.slot * (1 + l.slots);
  // Never empty: a zero-size frame (which entry.render skips) still maps a buffer.
  l.total = std::max<size_t>(l.dst + aligned(packed_size(call.dst)), 64);
  return l;
}

// The arena for this geometry: the old one is freed when the geometry changes.
std::string ensure_arena(const Layout& l) {
  Arena& a = g_state.arena;
  if (a.map && a.key == l.key && a.slots == l.slots) return "";
  free_arena();
  int fd = int(syscall(SYS_memfd_create, "kwaflux-frames", MFD_CLOEXEC));
  if (fd < 0) return std::string("cannot create shared memory: ") + std::strerror(errno);
  if (ftruncate(fd, off_t(l.total)) != 0) {
    close(fd);
    return "cannot size shared memory to " + std::to_string(l.total) +
           " bytes: " + std::strerror(errno);
  }
  void* map = mmap(nullptr, l.total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    close(fd);
    return std::string("cannot map shared memory: ") + std::strerror(errno);
  }
  a.fd = fd;
  a.map = map;
  a.size = l.total;
  a.key = l.key;
  a.slots = l.slots;
  a.sent = false;
  return "";
}

// Host rows (bottom-up, any stride) to packed top-down rows, and back for the window.
void copy_in(const HostImage& im, char* out) {
  const size_t row = packed_row(im);
  const int h = height(im);
  for (int k = 0; k < h; ++k)
    std::memcpy(out + size_t(k) * row,
                static_cast<const char*>(im.data) + long(h - 1 - k) * im.row_bytes, row);
}
void copy_out(const char* in, const HostImage& im, const OfxRectI& win) {
  const size_t row = packed_row(im), px = size_t(im.channels) * bytes_per_channel(im.depth);
  const int x1 = std::max(win.x1, im.bounds.x1), x2 = std::min(win.x2, im.bounds.x2);
  const int y1 = std::max(win.y1, im.bounds.y1), y2 = std::min(win.y2, im.bounds.y2);
  if (x2 <= x1) return;
  for (int y = y1; y < y2; ++y) {
    const size_t k = size_t(im.bounds.y2 - 1 - y);  // the packed copy's row, top first
    std::memcpy(static_cast<char*>(im.data) + long(y - im.bounds.y1) * im.row_bytes +
                    (x1 - im.bounds.x1) * px,
                in + k * row + (x1 - im.bounds.x1) * px, size_t(x2 - x1) * px);
  }
}

// ---------------------------------------------------------------- JSON for the request
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (unsigned char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += char(ch);
    } else if (ch < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", ch);
      out += buf;
    } else {
      out += char(ch);
    }
  }
  return out + "\"";
}
std::string number(double d) {
  if (std::isnan(d)) return "NaN";  // Python's json reads these
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", d);
  return buf;
}
std::string rect(const OfxRectI& r) {
  return "[" + std::to_string(r.x1) + "," + std::to_string(r.y1) + "," + std::to_string(r.x2) +
         "," + std::to_string(r.y2) + "]";
}
std::string image(const HostImage& im, size_t offset) {
  return "{\"offset\":" + std::to_string(offset) + ",\"shape\":[" + std::to_string(height(im)) +
         "," + std::to_string(width(im)) + "," + std::to_string(im.channels) +
         "],\"dtype\":" + quoted(dtype_of(im.depth)) + "}";
}

// The same dict python_host.cpp's params_of builds: geometry, then every parameter by name.
std::string params_json(const RenderCall& call) {
  std::string j = "{\"effect\":" + quoted(call.effect) + ",\"window\":" + rect(call.window) +
                  ",\"src_bounds\":" + rect(call.src.bounds) +
                  ",\"dst_bounds\":" + rect(call.dst.bounds) + ",\"render_scale\":[" +
                  number(call.render_scale[0]) + "," + number(call.render_scale[1]) +
                  "],\"time\":" + number(call.time) +
                  ",\"host_multires\":" + (call.host_multires ? "true" : "false") +
                  ",\"host_name\":" + quoted(call.host_name) +
                  ",\"premultiplication\":" + quoted(call.src.premultiplication);
  for (const ParamValue& p : call.params) {
    j += "," + quoted(p.name) + ":";
    switch (p.kind) {
      case ParamValue::Double:
        j += number(p.d);
        break;
      case ParamValue::Int:
        j += std::to_string(p.i);
        break;
      case ParamValue::Bool:
        j += p.i ? "true" : "false";
        break;
      case ParamValue::String:
        j += quoted(p.s);
        break;
    }
  }
  return j + "}";
}

// ---------------------------------------------------------------- one exchange
// Sends `body` (with the arena's descriptor the first time this worker sees it) and waits for
// the reply. A worker found dead before it got the request is replaced once, transparently.
std::string exchange(const Settings& s, const std::string& body_without_arena, bool with_arena,
                     Reply* reply) {
  for (int attempt = 0;; ++attempt) {
    if (std::string err = ensure_worker(s); !err.empty()) return err;
    Arena& a = g_state.arena;
    const bool send_fd = with_arena && !a.sent;
    std::string body = body_without_arena;
    if (with_arena)
      body.insert(body.size() - 1, ",\"arena\":" + std::to_string(send_fd ? a.size : 0));
    if (!send_msg(g_state.child.sock, body, send_fd ? a.fd : -1)) {
      std::string fate = reap(true);
      log_line("the render worker " + fate + " before this request; starting a new one");
      if (attempt == 0) continue;
      return "the render worker " + fate + " before taking the frame; " + worker_log_note();
    }
    if (send_fd) a.sent = true;
    const pid_t pid = g_state.child.pid;
    std::string answer;
    Got got = recv_msg(g_state.child.sock, s.timeout_s, &answer);
    if (got == Got::Timeout) {
      reap(true);
      return "the render worker (pid " + std::to_string(pid) + ") did not answer within " +
             std::to_string(int(s.timeout_s)) +
             " s (worker_timeout in kwaflux.cfg, KWAFLUX_OFX_WORKER_TIMEOUT): it was stopped, "
             "the next frame starts a new one; " +
             worker_log_note();
    }
    if (got == Got::Closed) {
      std::string fate = reap(false);
      return "the render worker (pid " + std::to_string(pid) + ") " + fate +
             " during this frame; the next frame starts a new one; " + worker_log_note();
    }
    if (!parse_reply(answer, reply)) {
      reap(true);
      return "the render worker (pid " + std::to_string(pid) +
             ") sent a garbled reply: treated as a crash, nothing written; " + worker_log_note();
    }
    return "";
  }
}

std::string request_for(const char* cmd, const RenderCall& call, const Layout& l, bool with_dst) {
  std::string j = "{\"cmd\":" + quoted(cmd) + ",\"params\":" + params_json(call) +
                  ",\"src\":" + image(call.src, l.src);
  if (with_dst) j += ",\"dst\":" + image(call.dst, l.dst);
  j += ",\"neighbours\":[";
  for (size_t k = 0; k < call.neighbours.size(); ++k)
    j += (k ? ",[" : "[") + std::to_string(call.neighbours[k].first) + "," +
         image(call.neighbours[k].second, l.slot * (1 + k)) + "]";
  return j + "]}";
}

}  // namespace

std::string render(const Settings& s, const RenderCall& call, double* engine_s) {
  static const bool timing = std::getenv("KWAFLUX_OFX_TIMING") != nullptr;
  std::lock_guard<std::mutex> lock(g_mutex);
  auto t0 = Clock::now();
  Layout l = layout_for(call);
  if (std::string err = ensure_arena(l); !err.empty()) return err;
  char* base = static_cast<char*>(g_state.arena.map);
  copy_in(call.src, base + l.src);
  for (size_t k = 0; k < call.neighbours.size(); ++k)
    copy_in(call.neighbours[k].second, base + l.slot * (1 + k));
  auto t1 = Clock::now();
  Reply r;
  if (std::string err = exchange(s, request_for("render", call, l, true), true, &r); !err.empty())
    return err;
  auto t2 = Clock::now();
  if (r.status == "error") return r.text.empty() ? "render failed in the worker" : r.text[0];
  // The reply must describe exactly the buffer asked for; anything else is a broken worker.
  const std::string want = std::to_string(height(call.dst)) + " " +
                           std::to_string(width(call.dst)) + " " +
                           std::to_string(call.dst.channels);
  if (r.status != "ok" || r.shape != want || r.dtype != dtype_of(call.dst.depth)) {
    const pid_t pid = g_state.child.pid;
    reap(true);
    return "the render worker (pid " + std::to_string(pid) + ") replied with a frame of shape " +
           (r.shape.empty() ? "?" : r.shape) + " " + (r.dtype.empty() ? "?" : r.dtype) + " for " +
           want + " " + dtype_of(call.dst.depth) + ": treated as a crash, nothing written; " +
           worker_log_note();
  }
  copy_out(base + l.dst, call.dst, call.window);
  auto t3 = Clock::now();
  if (engine_s) *engine_s = r.seconds;
  if (timing) {
    auto us = [](auto a, auto b) {
      return std::chrono::duration<double, std::micro>(b - a).count();
    };
    std::fprintf(stderr,
                 "kwaflux-timing worker copy_in_us=%.1f wait_us=%.1f copy_out_us=%.1f "
                 "engine_us=%.1f rss_kb=%ld\n",
                 us(t0, t1), us(t1, t2), us(t2, t3), r.seconds * 1e6, r.rss_kb);
  }
  return "";
}

std::string measure(const Settings& s, const RenderCall& call, std::string* text) {
  std::lock_guard<std::mutex> lock(g_mutex);
  RenderCall only_src = call;
  only_src.neighbours.clear();
  only_src.dst = call.src;  // sizes the arena; measure writes nothing
  Layout l = layout_for(only_src);
  if (std::string err = ensure_arena(l); !err.empty()) return err;
  copy_in(call.src, static_cast<char*>(g_state.arena.map) + l.src);
  Reply r;
  if (std::string err = exchange(s, request_for("measure", only_src, l, false), true, &r);
      !err.empty())
    return err;
  if (r.status != "ok") return r.text.empty() ? "measure failed in the worker" : r.text[0];
  *text = r.text.empty() ? "" : r.text[0];
  return "";
}

std::string doctor(const Settings& s, std::string* text) {
  std::lock_guard<std::mutex> lock(g_mutex);
  Reply r;
  if (std::string err = exchange(s, "{\"cmd\":\"doctor\"}", false, &r); !err.empty()) return err;
  std::string all;
  for (const std::string& line : r.text) all += line + "\n";
  *text = all;
  if (r.status != "ok") return r.text.empty() ? "doctor failed in the worker" : r.text[0];
  return "";
}

void shutdown() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_state.child.pid > 0) {
    // EOF on its socket ends the worker's loop; it is killed if it does not go within 2 s.
    ::shutdown(g_state.child.sock, SHUT_RDWR);
    std::string fate = reap(false);
    log_line("the render worker " + fate + " (the host unloaded the plugin)");
  }
  free_arena();
}

}  // namespace kwaflux::worker
