// kwaflux-ofx-test-host: a small OpenFX host that loads a bundle the way Resolve and Natron do
// (dlopen RTLD_LOCAL from an OFX_PLUGIN_PATH layout) and runs the whole action sequence on
// real pixels read from and written to .npy files. Flags emulate the host differences that
// matter to the plugin: multi-resolution, row order, bounds offsets, render scale, threads,
// a host that already runs its own Python, temporal clip access (frames at other times, frames
// rendered out of order, a fetch that fails).
#include <dirent.h>
#include <dlfcn.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../ofx/ofx_abi.h"
#include "conditions.h"
#include "npy.h"
#include "properties.h"

namespace {

using host_props::g_property_suite;
using host_props::Property;
using host_props::PropertySet;

// ---------------------------------------------------------------- host objects
struct Options {
  std::string bundle, plugin_id, input, output, context = kOfxImageEffectContextFilter;
  std::string host_name = "org.kwaflux.TestHost", host_python;
  std::string colourspace;  // an OFX 1.5 colour-managed host: what it says the source is in
  std::vector<std::pair<std::string, std::string>> params;
  std::vector<std::string> changed;  // parameters the "user" edits before rendering
  bool multires = true, negative_rowbytes = false, list = false, doctor = false;
  bool disconnect_source = false, emulate_resolve = false, same_buffers = false;
  bool unpremultiplied = false;
  bool temporal = true;         // the host offers temporal clip access
  std::string render_order;     // "", "reverse" or a list of frames ("4,0,2")
  std::vector<int> fail_fetch;  // frames whose fetch as a neighbour fails
  std::vector<int> odd_frames;  // frames that, as neighbours, come one pixel narrower
  int offset_x = 0, offset_y = 0, row_pad = 0, threads = 1, frames = 1, scale_down = 1;
  long report_rowbytes = 0;  // nonzero: a buggy host that reports this instead of the truth
  bool natron_env = false;   // --natron: Natron's PYTHONPATH / PYTHONNOUSERSITE
  // The n-th render (in the order frames are handed out) kills (SIGKILL) or freezes (SIGSTOP)
  // the plugin's worker kill_delay_ms after it began: a crash or a hang mid-frame.
  int kill_worker_at = -1, stop_worker_at = -1, kill_delay_ms = 0;
};
Options g_opt;

struct Buffer {
  std::vector<unsigned char> mem;
  unsigned char* data = nullptr;
  long row_bytes = 0;
  OfxRectI bounds{0, 0, 0, 0};
  int channels = 4, bpc = 4;
  std::string depth;
  static constexpr size_t kGuard = 256;
  static constexpr unsigned char kCanary = 0xA5;

  int width() const { return bounds.x2 - bounds.x1; }
  int height() const { return bounds.y2 - bounds.y1; }
  size_t pixel_bytes() const { return size_t(channels) * bpc; }
  unsigned char* row(int y) { return data + long(y - bounds.y1) * row_bytes; }

  void allocate(OfxRectI b, int c, int bytes, const std::string& d) {
    bounds = b;
    channels = c;
    bpc = bytes;
    depth = d;
    long stride = long(width()) * c * bytes + g_opt.row_pad;
    size_t body = size_t(stride) * std::max(height(), 0);
    mem.assign(body + 2 * kGuard, kCanary);
    unsigned char* first = mem.data() + kGuard;
    std::memset(first, 0, body);
    if (g_opt.negative_rowbytes) {
      // Rows stored top first in memory: the bottom row (y1) is the last one, rows go down.
      data = height() > 0 ? first + size_t(stride) * (height() - 1) : first;
      row_bytes = -stride;
    } else {
      data = first;
      row_bytes = stride;
    }
  }
  bool guards_intact() const {
    for (size_t k = 0; k < kGuard; ++k)
      if (mem[k] != kCanary || mem[mem.size() - 1 - k] != kCanary) return false;
    return true;
  }
};

struct Param {
  std::string name, type;
  PropertySet props{"param"};
  double d[3] = {0, 0, 0};
  int i = 0;
  std::string s;
};

struct ParamSet {
  PropertySet props{"paramset"};
  std::vector<std::unique_ptr<Param>> list;
  Param* find(const std::string& name) {
    for (auto& p : list)
      if (p->name == name) return p.get();
    return nullptr;
  }
};

struct Effect;
struct Clip {
  std::string name;
  PropertySet props{"clip"};
  Effect* effect = nullptr;
};

struct Frame {
  Buffer src, dst;
};

struct Effect {
  PropertySet props{"effect"};
  ParamSet params;
  std::map<std::string, std::unique_ptr<Clip>> clips;
  std::vector<Frame> frames;
  OfxRectD src_rod{0, 0, 0, 0}, out_rod{0, 0, 0, 0};
  std::mutex message_mutex;
  std::string persistent_message;
  OfxImageEffectHandle handle() { return reinterpret_cast<OfxImageEffectHandle>(this); }
  static Effect* from(OfxImageEffectHandle h) { return reinterpret_cast<Effect*>(h); }
};

struct Image : PropertySet {
  Image() : PropertySet("image") {}
};

PropertySet g_host_props{"host"};
std::atomic<int> g_messages{0};
std::atomic<int> g_live_images{0};  // fetched and not yet released: 0 after every action

// The render (or frames-needed) action this thread is inside: its time, and the source frames
// the plugin said it needs. A fetch at another time is checked against both.
struct RenderContext {
  bool active = false;
  double time = 0;
  std::vector<double> needed;  // min/max pairs
};
thread_local RenderContext t_render;

// ---------------------------------------------------------------- image effect suite
OfxStatus getPropertySet(OfxImageEffectHandle h, OfxPropertySetHandle* out) {
  if (!h) return kOfxStatErrBadHandle;
  *out = Effect::from(h)->props.handle();
  return kOfxStatOK;
}
OfxStatus getParamSet(OfxImageEffectHandle h, OfxParamSetHandle* out) {
  if (!h) return kOfxStatErrBadHandle;
  *out = reinterpret_cast<OfxParamSetHandle>(&Effect::from(h)->params);
  return kOfxStatOK;
}
OfxStatus clipDefine(OfxImageEffectHandle h, const char* name, OfxPropertySetHandle* out) {
  if (!h || !name) return kOfxStatErrBadHandle;
  Effect* e = Effect::from(h);
  auto& c = e->clips[name];
  if (!c) c = std::make_unique<Clip>();
  c->name = name;
  c->effect = e;
  c->props.set_string(kOfxPropName, {name});
  if (out) *out = c->props.handle();
  return kOfxStatOK;
}
OfxStatus clipGetHandle(OfxImageEffectHandle h, const char* name, OfxImageClipHandle* clip,
                        OfxPropertySetHandle* out) {
  if (!h || !name) return kOfxStatErrBadHandle;
  Effect* e = Effect::from(h);
  auto it = e->clips.find(name);
  if (it == e->clips.end()) return kOfxStatErrUnknown;
  *clip = reinterpret_cast<OfxImageClipHandle>(it->second.get());
  if (out) *out = it->second->props.handle();
  return kOfxStatOK;
}
OfxStatus clipGetPropertySet(OfxImageClipHandle h, OfxPropertySetHandle* out) {
  if (!h) return kOfxStatErrBadHandle;
  *out = reinterpret_cast<Clip*>(h)->props.handle();
  return kOfxStatOK;
}

// A source fetch at a time other than the render's, as a host with temporal access answers it:
// only when the host, the effect and the clip all declared it; --fail-fetch frames and frames
// beyond the clip fail (the caller fails those outside 0..N-1). Prints what happened.
bool neighbour_allowed(Clip* c, OfxTime t) {
  const double at = t_render.time;
  int declared_effect = int(c->effect->props.get_double(kOfxImageEffectPropTemporalClipAccess));
  int declared_clip = int(c->props.get_double(kOfxImageEffectPropTemporalClipAccess));
  if (!g_opt.temporal || !declared_effect || !declared_clip) {
    std::printf("host: refused fetch t=%g at render t=%g (no temporal access)\n", t, at);
    return false;
  }
  bool inside = false;
  for (size_t k = 0; k + 1 < t_render.needed.size(); k += 2)
    inside = inside || (t >= t_render.needed[k] && t <= t_render.needed[k + 1]);
  if (!inside) std::printf("host: fetch t=%g at render t=%g outside the frames needed\n", t, at);
  if (std::find(g_opt.fail_fetch.begin(), g_opt.fail_fetch.end(), int(std::lround(t))) !=
      g_opt.fail_fetch.end()) {
    std::printf("host: fetch t=%g at render t=%g failed (--fail-fetch)\n", t, at);
    return false;
  }
  if (t < 0 || t > g_opt.frames - 1) {
    std::printf("host: fetch t=%g at render t=%g: beyond the clip\n", t, at);
    return false;
  }
  std::printf("host: fetch t=%g at render t=%g\n", t, at);
  return true;
}

int frame_index(Effect* e, OfxTime t) {
  int k = g_opt.same_buffers ? 0 : int(std::lround(t));
  return k >= 0 && k < int(e->frames.size()) ? k : -1;
}

OfxStatus clipGetImage(OfxImageClipHandle h, OfxTime t, const OfxRectD*,
                       OfxPropertySetHandle* out) {
  if (!h || !out) return kOfxStatErrBadHandle;
  Clip* c = reinterpret_cast<Clip*>(h);
  *out = nullptr;
  bool is_source = c->name == kOfxImageEffectSimpleSourceClipName;
  if (is_source && g_opt.disconnect_source) return kOfxStatFailed;  // Resolve: unconnected clip
  if (is_source && t_render.active && t != t_render.time && !neighbour_allowed(c, t))
    return kOfxStatFailed;
  int k = frame_index(c->effect, t);
  if (k < 0) return kOfxStatFailed;
  ++g_live_images;
  Buffer& b = is_source ? c->effect->frames[k].src : c->effect->frames[k].dst;
  // --odd-frame: a neighbour of another size (as after a mid-clip format change); narrower
  // than the buffer, so reading it stays inside.
  const bool odd = is_source && t_render.active && t != t_render.time &&
                   std::count(g_opt.odd_frames.begin(), g_opt.odd_frames.end(), k) > 0;
  const int x2 = odd ? std::max(b.bounds.x1, b.bounds.x2 - 1) : b.bounds.x2;
  auto* img = new Image();
  img->set_pointer(kOfxImagePropData, b.data);
  img->set_int(kOfxImagePropBounds, {b.bounds.x1, b.bounds.y1, x2, b.bounds.y2});
  img->set_int(kOfxImagePropRegionOfDefinition,
               {b.bounds.x1, b.bounds.y1, b.bounds.x2, b.bounds.y2});
  img->set_int(kOfxImagePropRowBytes,
               {int(g_opt.report_rowbytes ? g_opt.report_rowbytes : b.row_bytes)});
  img->set_string(kOfxImageEffectPropPixelDepth, {b.depth});
  img->set_string(kOfxImageEffectPropComponents,
                  {b.channels == 4 ? kOfxImageComponentRGBA : kOfxImageComponentRGB});
  img->set_string(kOfxImageEffectPropPreMultiplication,
                  {b.channels != 4         ? kOfxImageOpaque
                   : g_opt.unpremultiplied ? kOfxImageUnPreMultiplied
                                           : kOfxImagePreMultiplied});
  double rs = 1.0 / g_opt.scale_down;
  img->set_double(kOfxImageEffectPropRenderScale, {rs, rs});
  img->set_double(kOfxImagePropPixelAspectRatio, {1.0});
  img->set_string(kOfxImagePropField, {"OfxFieldNone"});
  img->set_string(kOfxImagePropUniqueIdentifier, {c->name + std::to_string(k)});
  *out = img->handle();
  return kOfxStatOK;
}
OfxStatus clipReleaseImage(OfxPropertySetHandle h) {
  if (!h) return kOfxStatErrBadHandle;
  --g_live_images;
  delete static_cast<Image*>(PropertySet::from(h));
  return kOfxStatOK;
}
OfxStatus clipGetRegionOfDefinition(OfxImageClipHandle h, OfxTime, OfxRectD* bounds) {
  if (!h || !bounds) return kOfxStatErrBadHandle;
  Clip* c = reinterpret_cast<Clip*>(h);
  *bounds =
      c->name == kOfxImageEffectSimpleSourceClipName ? c->effect->src_rod : c->effect->out_rod;
  return kOfxStatOK;
}
int abortRender(OfxImageEffectHandle) { return 0; }
OfxStatus imageMemoryAlloc(OfxImageEffectHandle, size_t n, OfxImageMemoryHandle* out) {
  *out = reinterpret_cast<OfxImageMemoryHandle>(std::malloc(n ? n : 1));
  return *out ? kOfxStatOK : kOfxStatErrMemory;
}
OfxStatus imageMemoryFree(OfxImageMemoryHandle h) {
  std::free(h);
  return kOfxStatOK;
}
OfxStatus imageMemoryLock(OfxImageMemoryHandle h, void** data) {
  *data = h;
  return kOfxStatOK;
}
OfxStatus imageMemoryUnlock(OfxImageMemoryHandle) { return kOfxStatOK; }

OfxImageEffectSuiteV1 g_effect_suite = {
    getPropertySet,     getParamSet,      clipDefine,       clipGetHandle,
    clipGetPropertySet, clipGetImage,     clipReleaseImage, clipGetRegionOfDefinition,
    abortRender,        imageMemoryAlloc, imageMemoryFree,  imageMemoryLock,
    imageMemoryUnlock};

// ---------------------------------------------------------------- parameter suite
OfxStatus paramDefine(OfxParamSetHandle h, const char* type, const char* name,
                      OfxPropertySetHandle* out) {
  if (!h || !type || !name) return kOfxStatErrBadHandle;
  ParamSet* ps = reinterpret_cast<ParamSet*>(h);
  if (ps->find(name)) return kOfxStatErrExists;
  auto p = std::make_unique<Param>();
  p->name = name;
  p->type = type;
  p->props.set_string(kOfxPropName, {name});
  p->props.set_string(kOfxPropType, {type});
  if (out) *out = p->props.handle();
  ps->list.push_back(std::move(p));
  return kOfxStatOK;
}
OfxStatus paramGetHandle(OfxParamSetHandle h, const char* name, OfxParamHandle* param,
                         OfxPropertySetHandle* out) {
  if (!h || !name) return kOfxStatErrBadHandle;
  Param* p = reinterpret_cast<ParamSet*>(h)->find(name);
  if (!p) return kOfxStatErrUnknown;
  *param = reinterpret_cast<OfxParamHandle>(p);
  if (out) *out = p->props.handle();
  return kOfxStatOK;
}
OfxStatus paramSetGetPropertySet(OfxParamSetHandle h, OfxPropertySetHandle* out) {
  if (!h) return kOfxStatErrBadHandle;
  *out = reinterpret_cast<ParamSet*>(h)->props.handle();
  return kOfxStatOK;
}
OfxStatus paramGetPropertySet(OfxParamHandle h, OfxPropertySetHandle* out) {
  if (!h) return kOfxStatErrBadHandle;
  *out = reinterpret_cast<Param*>(h)->props.handle();
  return kOfxStatOK;
}
OfxStatus param_read(Param* p, va_list ap) {
  if (p->type == kOfxParamTypeDouble) {
    *va_arg(ap, double*) = p->d[0];
  } else if (p->type == kOfxParamTypeInteger || p->type == kOfxParamTypeBoolean ||
             p->type == kOfxParamTypeChoice) {
    *va_arg(ap, int*) = p->i;
  } else if (p->type == kOfxParamTypeString) {
    *va_arg(ap, const char**) = p->s.c_str();
  } else {
    return kOfxStatErrUnsupported;
  }
  return kOfxStatOK;
}
OfxStatus paramGetValue(OfxParamHandle h, ...) {
  if (!h) return kOfxStatErrBadHandle;
  va_list ap;
  va_start(ap, h);
  OfxStatus s = param_read(reinterpret_cast<Param*>(h), ap);
  va_end(ap);
  return s;
}
OfxStatus paramGetValueAtTime(OfxParamHandle h, OfxTime t, ...) {
  if (!h) return kOfxStatErrBadHandle;
  va_list ap;
  va_start(ap, t);
  OfxStatus s = param_read(reinterpret_cast<Param*>(h), ap);
  va_end(ap);
  return s;
}
// Plugins set values only from actions the host serialises (instance changed): no lock needed.
OfxStatus paramSetValue(OfxParamHandle h, ...) {
  if (!h) return kOfxStatErrBadHandle;
  Param* p = reinterpret_cast<Param*>(h);
  va_list ap;
  va_start(ap, h);
  OfxStatus s = kOfxStatOK;
  if (p->type == kOfxParamTypeDouble)
    p->d[0] = va_arg(ap, double);
  else if (p->type == kOfxParamTypeInteger || p->type == kOfxParamTypeBoolean ||
           p->type == kOfxParamTypeChoice)
    p->i = va_arg(ap, int);
  else if (p->type == kOfxParamTypeString)
    p->s = va_arg(ap, const char*);
  else
    s = kOfxStatErrUnsupported;
  va_end(ap);
  return s;
}
OfxStatus paramUnsupportedT(OfxParamHandle, OfxTime, ...) { return kOfxStatErrUnsupported; }
OfxStatus paramUnsupportedTT(OfxParamHandle, OfxTime, OfxTime, ...) {
  return kOfxStatErrUnsupported;
}
OfxStatus paramGetNumKeys(OfxParamHandle, unsigned int* n) {
  *n = 0;
  return kOfxStatOK;
}
OfxStatus paramGetKeyTime(OfxParamHandle, unsigned int, OfxTime*) { return kOfxStatErrBadIndex; }
OfxStatus paramGetKeyIndex(OfxParamHandle, OfxTime, int, int*) { return kOfxStatFailed; }
OfxStatus paramDeleteKey(OfxParamHandle, OfxTime) { return kOfxStatErrBadIndex; }
OfxStatus paramDeleteAllKeys(OfxParamHandle) { return kOfxStatOK; }
OfxStatus paramCopy(OfxParamHandle, OfxParamHandle, OfxTime, const OfxRangeD*) {
  return kOfxStatErrUnsupported;
}
OfxStatus paramEditBegin(OfxParamSetHandle, const char*) { return kOfxStatOK; }
OfxStatus paramEditEnd(OfxParamSetHandle) { return kOfxStatOK; }

OfxParameterSuiteV1 g_param_suite = {
    paramDefine,      paramGetHandle,      paramSetGetPropertySet, paramGetPropertySet,
    paramGetValue,    paramGetValueAtTime, paramUnsupportedT,      paramUnsupportedTT,
    paramSetValue,    paramUnsupportedT,   paramGetNumKeys,        paramGetKeyTime,
    paramGetKeyIndex, paramDeleteKey,      paramDeleteAllKeys,     paramCopy,
    paramEditBegin,   paramEditEnd};

// ---------------------------------------------------------------- message, memory, threads
std::string format_message(const char* format, va_list ap) {
  char buf[4096];
  std::vsnprintf(buf, sizeof buf, format ? format : "", ap);
  return buf;
}
OfxStatus message(void*, const char* type, const char* id, const char* format, ...) {
  va_list ap;
  va_start(ap, format);
  std::string text = format_message(format, ap);
  va_end(ap);
  g_messages++;
  std::fprintf(stderr, "host: message [%s] %s: %s\n", type ? type : "?", id ? id : "",
               text.c_str());
  return kOfxStatOK;
}
OfxStatus setPersistentMessage(void* h, const char* type, const char* id, const char* format, ...) {
  va_list ap;
  va_start(ap, format);
  std::string text = format_message(format, ap);
  va_end(ap);
  g_messages++;
  std::fprintf(stderr, "host: persistent message [%s] %s: %s\n", type ? type : "?", id ? id : "",
               text.c_str());
  if (h) {
    Effect* e = Effect::from(reinterpret_cast<OfxImageEffectHandle>(h));
    std::lock_guard<std::mutex> lock(e->message_mutex);
    e->persistent_message = text;
  }
  return kOfxStatOK;
}
OfxStatus clearPersistentMessage(void* h) {
  if (h) {
    Effect* e = Effect::from(reinterpret_cast<OfxImageEffectHandle>(h));
    std::lock_guard<std::mutex> lock(e->message_mutex);
    e->persistent_message.clear();
  }
  return kOfxStatOK;
}
OfxMessageSuiteV1 g_message_v1 = {message};
OfxMessageSuiteV2 g_message_v2 = {message, setPersistentMessage, clearPersistentMessage};

OfxStatus memoryAlloc(void*, size_t n, void** data) {
  *data = std::malloc(n ? n : 1);
  return *data ? kOfxStatOK : kOfxStatErrMemory;
}
OfxStatus memoryFree(void* data) {
  std::free(data);
  return kOfxStatOK;
}
OfxMemorySuiteV1 g_memory_suite = {memoryAlloc, memoryFree};

thread_local unsigned int t_thread_index = 0;
thread_local bool t_spawned = false;
OfxStatus multiThread(OfxThreadFunctionV1* func, unsigned int n, void* arg) {
  std::vector<std::thread> pool;
  for (unsigned int k = 0; k < n; ++k)
    pool.emplace_back([=] {
      t_thread_index = k;
      t_spawned = true;
      func(k, n, arg);
    });
  for (auto& t : pool) t.join();
  return kOfxStatOK;
}
OfxStatus multiThreadNumCPUs(unsigned int* n) {
  *n = std::max(1u, std::thread::hardware_concurrency());
  return kOfxStatOK;
}
OfxStatus multiThreadIndex(unsigned int* i) {
  *i = t_thread_index;
  return kOfxStatOK;
}
int multiThreadIsSpawnedThread() { return t_spawned; }
OfxStatus mutexCreate(OfxMutexHandle* m, int) {
  *m = reinterpret_cast<OfxMutexHandle>(new std::recursive_mutex());
  return kOfxStatOK;
}
OfxStatus mutexDestroy(const OfxMutexHandle m) {
  delete reinterpret_cast<std::recursive_mutex*>(m);
  return kOfxStatOK;
}
OfxStatus mutexLock(const OfxMutexHandle m) {
  reinterpret_cast<std::recursive_mutex*>(m)->lock();
  return kOfxStatOK;
}
OfxStatus mutexUnLock(const OfxMutexHandle m) {
  reinterpret_cast<std::recursive_mutex*>(m)->unlock();
  return kOfxStatOK;
}
OfxStatus mutexTryLock(const OfxMutexHandle m) {
  return reinterpret_cast<std::recursive_mutex*>(m)->try_lock() ? kOfxStatOK : kOfxStatFailed;
}
OfxMultiThreadSuiteV1 g_thread_suite = {
    multiThread, multiThreadNumCPUs, multiThreadIndex, multiThreadIsSpawnedThread,
    mutexCreate, mutexDestroy,       mutexLock,        mutexUnLock,
    mutexTryLock};

const void* fetchSuite(OfxPropertySetHandle, const char* name, int version) {
  if (!name) return nullptr;
  std::string n = name;
  if (n == kOfxPropertySuite && version == 1) return &g_property_suite;
  if (n == kOfxImageEffectSuite && version == 1) return &g_effect_suite;
  if (n == kOfxParameterSuite && version == 1) return &g_param_suite;
  if (n == kOfxMessageSuite && version == 1) return &g_message_v1;
  if (n == kOfxMessageSuite && version == 2) return &g_message_v2;
  if (n == kOfxMemorySuite && version == 1) return &g_memory_suite;
  if (n == kOfxMultiThreadSuite && version == 1) return &g_thread_suite;
  return nullptr;
}

OfxHost g_host = {nullptr, fetchSuite};

// ---------------------------------------------------------------- helpers
[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "host: error: %s\n", what.c_str());
  std::exit(2);
}

std::vector<std::string> find_binaries() {
  std::vector<std::string> out;
  auto add_bundle = [&](const std::string& bundle) {
    std::string base = bundle;
    while (!base.empty() && base.back() == '/') base.pop_back();
    std::string name = base.substr(base.rfind('/') + 1);
    name = name.substr(0, name.size() - std::strlen(".bundle"));  // NAME.ofx
    std::string bin = base + "/Contents/Linux-x86-64/" + name;
    struct stat st;
    if (stat(bin.c_str(), &st) == 0) out.push_back(bin);
  };
  if (!g_opt.bundle.empty()) {
    add_bundle(g_opt.bundle);
    if (out.empty()) die(g_opt.bundle + ": no Contents/Linux-x86-64/<name>.ofx inside");
    return out;
  }
  // Like Resolve and Natron: every *.ofx.bundle in OFX_PLUGIN_PATH, then /usr/OFX/Plugins.
  std::string path = std::getenv("OFX_PLUGIN_PATH") ? std::getenv("OFX_PLUGIN_PATH") : "";
  path += ":/usr/OFX/Plugins";
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    start = end + 1;
    if (dir.empty()) continue;
    if (DIR* d = opendir(dir.c_str())) {
      while (dirent* ent = readdir(d)) {
        std::string n = ent->d_name;
        if (n.size() > 11 && n.compare(n.size() - 11, 11, ".ofx.bundle") == 0)
          add_bundle(dir + "/" + n);
      }
      closedir(d);
    }
  }
  return out;
}

std::string format_time(double t) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", t);
  return buf;
}

int depth_bytes(const std::string& descr) { return descr == "|u1" ? 1 : descr == "<f4" ? 4 : 2; }
std::string depth_name(const std::string& descr) {
  if (descr == "|u1") return kOfxBitDepthByte;
  if (descr == "<u2") return kOfxBitDepthShort;
  if (descr == "<f2") return kOfxBitDepthHalf;
  return kOfxBitDepthFloat;
}

// Picture row k counts from the top; OFX rows count up from the bottom.
void fill_from_picture(Buffer& b, const npy::Image& pic, int roll) {
  size_t px = b.pixel_bytes();
  for (int k = 0; k < b.height(); ++k) {
    unsigned char* row = b.row(b.bounds.y2 - 1 - k);
    for (int x = 0; x < b.width(); ++x) {
      int sx = ((x - roll) % pic.width + pic.width) % pic.width;
      std::memcpy(row + x * px, pic.bytes.data() + k * pic.row_bytes() + sx * px, px);
    }
  }
}

npy::Image picture_from(Buffer& b, const std::string& descr) {
  npy::Image img;
  img.descr = descr;
  img.width = b.width();
  img.height = b.height();
  img.channels = b.channels;
  img.bytes.resize(img.row_bytes() * img.height);
  for (int k = 0; k < img.height; ++k)
    std::memcpy(img.bytes.data() + k * img.row_bytes(), b.row(b.bounds.y2 - 1 - k),
                img.row_bytes());
  return img;
}

void set_param_from_text(Param* p, const std::string& v) {
  if (p->type == kOfxParamTypeDouble)
    p->d[0] = std::stod(v);
  else if (p->type == kOfxParamTypeBoolean)
    p->i = (v == "1" || v == "true" || v == "True");
  else if (p->type == kOfxParamTypeInteger)
    p->i = std::stoi(v);
  else if (p->type == kOfxParamTypeChoice) {
    // Accept an option label or an index.
    PropertySet& ps = p->props;
    std::lock_guard<std::mutex> lock(ps.mutex);
    auto it = ps.props.find(kOfxParamPropChoiceOption);
    if (it != ps.props.end())
      for (size_t k = 0; k < it->second.s.size(); ++k)
        if (it->second.s[k] == v) {
          p->i = int(k);
          return;
        }
    p->i = std::stoi(v);
  } else if (p->type == kOfxParamTypeString)
    p->s = v;
}

void print_params(Effect& e) {
  for (auto& p : e.params.list) {
    std::printf("param %s type=%s", p->name.c_str(), p->type.c_str());
    for (const char* key : {kOfxParamPropDefault, kOfxParamPropMin, kOfxParamPropMax,
                            kOfxParamPropDisplayMin, kOfxParamPropDisplayMax}) {
      std::string v;
      {
        std::lock_guard<std::mutex> lock(p->props.mutex);
        auto it = p->props.props.find(key);
        if (it == p->props.props.end() || it->second.size() == 0) continue;
        const Property& q = it->second;
        if (q.kind == Property::String)
          v = "'" + q.s[0] + "'";
        else if (q.kind == Property::Double)
          v = std::to_string(q.d[0]);
        else if (q.kind == Property::Int)
          v = std::to_string(q.i[0]);
      }
      std::printf(" %s=%s", key + std::strlen("OfxParamProp"), v.c_str());
    }
    std::printf("\n");
  }
}

struct Loaded {
  void* lib = nullptr;
  OfxPlugin* plugin = nullptr;
};

OfxStatus call(OfxPlugin* plugin, const char* action, void* handle, PropertySet* in,
               PropertySet* out) {
  OfxStatus s =
      plugin->mainEntry(action, handle, in ? in->handle() : nullptr, out ? out->handle() : nullptr);
  std::printf("action %s -> %d\n", action, s);
  std::fflush(stdout);
  return s;
}

void usage() {
  std::fprintf(
      stderr,
      "usage: kwaflux-ofx-test-host [--bundle DIR] [--plugin ID] [--list] [--doctor]\n"
      "  [--input IN.npy --output OUT.npy] [--param NAME=VALUE]... [--context filter|general]\n"
      "  [--multires 0|1] [--resolve] [--negative-rowbytes] [--offset X,Y] [--row-pad N]\n"
      "  [--render-scale-down K] [--threads N] [--frames N] [--host-python LIBPYTHON]\n"
      "  [--disconnect-source] [--same-buffers] [--unpremultiplied] [--report-rowbytes N]\n"
      "  [--changed PARAM]... [--no-temporal] [--render-order reverse|T,T,...]\n"
      "  [--fail-fetch T]... [--odd-frame T]... [--natron] [--kill-worker-at N]\n"
      "  [--stop-worker-at N] [--kill-delay-ms MS]\n");
  std::exit(2);
}

void parse(int argc, char** argv) {
  for (int k = 1; k < argc; ++k) {
    std::string a = argv[k];
    auto next = [&]() -> std::string {
      if (k + 1 >= argc) usage();
      return argv[++k];
    };
    if (a == "--bundle")
      g_opt.bundle = next();
    else if (a == "--plugin")
      g_opt.plugin_id = next();
    else if (a == "--input")
      g_opt.input = next();
    else if (a == "--output")
      g_opt.output = next();
    else if (a == "--list")
      g_opt.list = true;
    else if (a == "--doctor")
      g_opt.doctor = true;
    else if (a == "--context")
      g_opt.context =
          next() == "general" ? kOfxImageEffectContextGeneral : kOfxImageEffectContextFilter;
    else if (a == "--multires")
      g_opt.multires = next() != "0";
    else if (a == "--resolve") {
      // What Resolve tells a plugin: no multi-resolution, its own name.
      g_opt.emulate_resolve = true;
      g_opt.multires = false;
      g_opt.host_name = "DaVinciResolve";
    } else if (a == "--natron") {
      // What Natron 2.5 tells a plugin and does to its process: multi-resolution, its name,
      // PYTHONPATH and PYTHONNOUSERSITE set for its own Python (with --host-python).
      g_opt.multires = true;
      g_opt.host_name = "fr.inria.Natron";
      g_opt.natron_env = true;
    } else if (a == "--kill-worker-at")
      g_opt.kill_worker_at = std::stoi(next());
    else if (a == "--stop-worker-at")
      g_opt.stop_worker_at = std::stoi(next());
    else if (a == "--kill-delay-ms")
      g_opt.kill_delay_ms = std::stoi(next());
    else if (a == "--host-name")
      g_opt.host_name = next();
    else if (a == "--colour-managed")
      g_opt.colourspace = next();
    else if (a == "--negative-rowbytes")
      g_opt.negative_rowbytes = true;
    else if (a == "--offset") {
      if (std::sscanf(next().c_str(), "%d,%d", &g_opt.offset_x, &g_opt.offset_y) != 2) usage();
    } else if (a == "--row-pad")
      g_opt.row_pad = std::stoi(next());
    else if (a == "--render-scale-down")
      g_opt.scale_down = std::max(1, std::stoi(next()));
    else if (a == "--threads")
      g_opt.threads = std::max(1, std::stoi(next()));
    else if (a == "--frames")
      g_opt.frames = std::max(1, std::stoi(next()));
    else if (a == "--host-python")
      g_opt.host_python = next();
    else if (a == "--disconnect-source")
      g_opt.disconnect_source = true;
    else if (a == "--report-rowbytes")
      g_opt.report_rowbytes = std::stol(next());
    else if (a == "--unpremultiplied")
      g_opt.unpremultiplied = true;  // straight alpha
    else if (a == "--same-buffers")
      g_opt.same_buffers = true;  // one image pair for all frames
    else if (a == "--changed")
      g_opt.changed.push_back(next());
    else if (a == "--no-temporal")
      g_opt.temporal = false;  // a host without temporal clip access
    else if (a == "--render-order")
      g_opt.render_order = next();
    else if (a == "--fail-fetch")
      g_opt.fail_fetch.push_back(std::stoi(next()));
    else if (a == "--odd-frame")
      g_opt.odd_frames.push_back(std::stoi(next()));
    else if (a == "--param") {
      std::string kv = next();
      size_t eq = kv.find('=');
      if (eq == std::string::npos) usage();
      g_opt.params.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    } else
      usage();
  }
}

}  // namespace

int main(int argc, char** argv) {
  parse(argc, argv);
  g_live_images = 0;  // the fuzzer runs main many times in one process
  // One buffer pair stands for every time: a neighbour would be the frame itself.
  if (g_opt.same_buffers) g_opt.temporal = false;
  if (!g_opt.host_python.empty())
    host_conditions::start_host_python(g_opt.host_python, g_opt.natron_env);

  g_host_props.set_string(kOfxPropName, {g_opt.host_name});
  g_host_props.set_string(kOfxPropLabel, {"Kwaflux test host"});
  g_host_props.set_int(kOfxImageEffectHostPropIsBackground, {1});
  g_host_props.set_string(kOfxImageEffectPropColourManagementStyle,
                          {g_opt.colourspace.empty() ? kOfxImageEffectPropColourManagementNone
                                                     : kOfxImageEffectPropColourManagementBasic});
  g_host_props.set_int(kOfxImageEffectPropSupportsMultiResolution, {g_opt.multires ? 1 : 0});
  g_host_props.set_int(kOfxImageEffectPropSupportsTiles, {g_opt.emulate_resolve ? 0 : 1});
  g_host_props.set_int(kOfxImageEffectPropTemporalClipAccess, {g_opt.temporal ? 1 : 0});
  g_host_props.set_int(kOfxImageEffectPropSupportsMultipleClipDepths, {0});
  g_host_props.set_string(kOfxImageEffectPropSupportedComponents,
                          {kOfxImageComponentRGBA, kOfxImageComponentRGB});
  g_host_props.set_string(kOfxImageEffectPropSupportedContexts,
                          {kOfxImageEffectContextFilter, kOfxImageEffectContextGeneral});
  g_host_props.set_string(
      kOfxImageEffectPropSupportedPixelDepths,
      {kOfxBitDepthByte, kOfxBitDepthShort, kOfxBitDepthHalf, kOfxBitDepthFloat});
  g_host.host = g_host_props.handle();

  // ---- find and load the plugin (the way hosts do: RTLD_LOCAL, so plugins cannot clash)
  Loaded loaded;
  for (const std::string& bin : find_binaries()) {
    void* lib = dlopen(bin.c_str(), RTLD_LAZY | RTLD_LOCAL);
    if (!lib) {
      std::fprintf(stderr, "host: cannot load %s: %s\n", bin.c_str(), dlerror());
      continue;
    }
    auto set_host = reinterpret_cast<OfxSetHostFn>(dlsym(lib, "OfxSetHost"));
    auto count = reinterpret_cast<OfxGetNumberOfPluginsFn>(dlsym(lib, "OfxGetNumberOfPlugins"));
    auto get = reinterpret_cast<OfxGetPluginFn>(dlsym(lib, "OfxGetPlugin"));
    if (!count || !get) {
      std::fprintf(stderr, "host: %s exports no OfxGetNumberOfPlugins/OfxGetPlugin\n", bin.c_str());
      continue;
    }
    if (set_host) set_host(&g_host);
    int n = count();
    for (int k = 0; k < n; ++k) {
      OfxPlugin* p = get(k);
      if (!p) continue;
      std::printf("plugin %s %u.%u api=%s v%d in %s\n", p->pluginIdentifier, p->pluginVersionMajor,
                  p->pluginVersionMinor, p->pluginApi, p->apiVersion, bin.c_str());
      if (!loaded.plugin && std::string(p->pluginApi) == kOfxImageEffectPluginApi &&
          (g_opt.plugin_id.empty() || g_opt.plugin_id == p->pluginIdentifier)) {
        loaded.lib = lib;
        loaded.plugin = p;
      }
    }
  }
  if (!loaded.plugin) die("no matching OFX image effect plugin found");
  OfxPlugin* plugin = loaded.plugin;
  plugin->setHost(&g_host);

  if (call(plugin, kOfxActionLoad, nullptr, nullptr, nullptr) != kOfxStatOK &&
      true)  // a failed load means the host drops the plugin
    die("plugin refused to load");
  Effect descriptor;
  if (call(plugin, kOfxActionDescribe, descriptor.handle(), nullptr, nullptr) != kOfxStatOK)
    die("describe failed");
  std::printf("label %s\n", descriptor.props.get_string(kOfxPropLabel).c_str());
  std::printf("thread safety %s\n",
              descriptor.props.get_string(kOfxImageEffectPluginRenderThreadSafety).c_str());
  std::printf("plugin multires %d\n",
              int(descriptor.props.get_double(kOfxImageEffectPropSupportsMultiResolution, 0, 1)));

  Effect context_desc;
  context_desc.props.copy_from(descriptor.props);
  PropertySet in_ctx;
  in_ctx.set_string(kOfxImageEffectPropContext, {g_opt.context});
  if (call(plugin, kOfxImageEffectActionDescribeInContext, context_desc.handle(), &in_ctx,
           nullptr) != kOfxStatOK)
    die("describe in context failed");
  if (g_opt.list) {
    print_params(context_desc);
    call(plugin, kOfxActionUnload, nullptr, nullptr, nullptr);
    return 0;
  }

  // ---- the instance: clips and params copied from the context descriptor
  Effect inst;
  inst.props.copy_from(context_desc.props);
  inst.props.set_string(kOfxImageEffectPropContext, {g_opt.context});
  for (auto& [name, clip] : context_desc.clips) {
    auto c = std::make_unique<Clip>();
    c->name = name;
    c->effect = &inst;
    c->props.copy_from(clip->props);
    inst.clips[name] = std::move(c);
  }
  for (auto& p : context_desc.params.list) {
    auto q = std::make_unique<Param>();
    q->name = p->name;
    q->type = p->type;
    q->props.copy_from(p->props);
    q->d[0] = p->props.get_double(kOfxParamPropDefault);
    q->i = int(p->props.get_double(kOfxParamPropDefault));
    q->s = p->props.get_string(kOfxParamPropDefault);
    inst.params.list.push_back(std::move(q));
  }
  for (auto& [name, value] : g_opt.params) {
    Param* p = inst.params.find(name);
    if (!p) die("unknown parameter " + name);
    set_param_from_text(p, value);
  }

  // ---- pixels
  npy::Image picture;
  if (!g_opt.input.empty()) {
    try {
      picture = npy::read(g_opt.input);
    } catch (const std::exception& e) {
      die(e.what());
    }
  } else {
    // No input (doctor): a small grey ramp.
    picture.descr = "<f4";
    picture.width = 16;
    picture.height = 8;
    picture.channels = 4;
    picture.bytes.resize(picture.row_bytes() * picture.height);
    auto* f = reinterpret_cast<float*>(picture.bytes.data());
    for (size_t k = 0; k < picture.bytes.size() / 4; ++k) f[k] = float(k % 97) / 97.0f;
  }
  if (g_opt.scale_down > 1) {
    // The host's proxy image: every K-th pixel of the full-resolution picture.
    npy::Image small = picture;
    int k = g_opt.scale_down;
    small.width = (picture.width + k - 1) / k;
    small.height = (picture.height + k - 1) / k;
    small.bytes.resize(small.row_bytes() * small.height);
    size_t px = size_t(picture.channels) * picture.bytes_per_channel();
    for (int y = 0; y < small.height; ++y)
      for (int x = 0; x < small.width; ++x)
        std::memcpy(&small.bytes[y * small.row_bytes() + x * px],
                    &picture.bytes[y * k * picture.row_bytes() + x * k * px], px);
    inst.src_rod = {double(g_opt.offset_x), double(g_opt.offset_y),
                    double(g_opt.offset_x + picture.width),
                    double(g_opt.offset_y + picture.height)};
    picture = std::move(small);
  } else {
    inst.src_rod = {double(g_opt.offset_x), double(g_opt.offset_y),
                    double(g_opt.offset_x + picture.width),
                    double(g_opt.offset_y + picture.height)};
  }
  const double rs = 1.0 / g_opt.scale_down;
  const int channels = picture.channels;
  const std::string depth = depth_name(picture.descr);
  const std::string components = channels == 4 ? kOfxImageComponentRGBA : kOfxImageComponentRGB;
  if (channels != 3 && channels != 4) die("input must have 3 or 4 channels");
  for (auto& [name, clip] : inst.clips) {
    clip->props.set_string(kOfxImageEffectPropPixelDepth, {depth});
    clip->props.set_string(kOfxImageEffectPropComponents, {components});
    clip->props.set_int(
        kOfxImageClipPropConnected,
        {name == kOfxImageEffectSimpleSourceClipName && g_opt.disconnect_source ? 0 : 1});
    clip->props.set_double(kOfxImagePropPixelAspectRatio, {1.0});
    // Frames 0..N-1, as the plugin reads them to clamp its window at the clip's ends.
    clip->props.set_double(kOfxImageEffectPropFrameRange, {0.0, double(g_opt.frames - 1)});
  }
  inst.props.set_double(kOfxImageEffectPropFrameRange, {0.0, double(g_opt.frames - 1)});
  inst.props.set_double(kOfxImageEffectPropProjectSize,
                        {inst.src_rod.x2 - inst.src_rod.x1, inst.src_rod.y2 - inst.src_rod.y1});

  int status_all = 0;
  if (call(plugin, kOfxActionCreateInstance, inst.handle(), nullptr, nullptr) != kOfxStatOK)
    die("create instance failed");

  if (g_opt.doctor) {
    PropertySet out;
    OfxStatus s = call(plugin, "KwafluxActionDoctor", inst.handle(), nullptr, &out);
    std::printf("%s\n", out.get_string("KwafluxPropReport").c_str());
    if (s != kOfxStatOK) status_all = 3;
  }

  PropertySet prefs_out;
  call(plugin, kOfxImageEffectActionGetClipPreferences, inst.handle(), nullptr, &prefs_out);
  if (!g_opt.colourspace.empty()) {
    // What the effect asked for, then what this host delivers anyway (the plugin must read it).
    const std::string key = std::string(kOfxImageClipPropPreferredColourspaces) + "_" +
                            kOfxImageEffectSimpleSourceClipName;
    std::printf("preferred colourspaces:");
    for (int k = 0;; ++k) {
      std::string v = prefs_out.get_string(key.c_str(), k);
      if (v.empty()) break;
      std::printf(" %s", v.c_str());
    }
    std::printf("\n");
    inst.clips[kOfxImageEffectSimpleSourceClipName]->props.set_string(kOfxImageClipPropColourspace,
                                                                      {g_opt.colourspace});
  }

  // Region of definition: the plugin's answer where the host supports multi-resolution,
  // otherwise the project (source) size, as Resolve does.
  PropertySet rod_in, rod_out;
  rod_in.set_double(kOfxPropTime, {0.0});
  rod_in.set_double(kOfxImageEffectPropRenderScale, {rs, rs});
  inst.out_rod = inst.src_rod;
  OfxStatus rs_status =
      call(plugin, kOfxImageEffectActionGetRegionOfDefinition, inst.handle(), &rod_in, &rod_out);
  if (rs_status == kOfxStatOK && g_opt.multires) {
    inst.out_rod = {rod_out.get_double(kOfxImageEffectPropRegionOfDefinition, 0),
                    rod_out.get_double(kOfxImageEffectPropRegionOfDefinition, 1),
                    rod_out.get_double(kOfxImageEffectPropRegionOfDefinition, 2),
                    rod_out.get_double(kOfxImageEffectPropRegionOfDefinition, 3)};
  }
  std::printf("rod %g %g %g %g\n", inst.out_rod.x1, inst.out_rod.y1, inst.out_rod.x2,
              inst.out_rod.y2);

  auto to_pixels = [&](const OfxRectD& r) {
    return OfxRectI{int(std::floor(r.x1 * rs)), int(std::floor(r.y1 * rs)),
                    int(std::ceil(r.x2 * rs - 1e-9)), int(std::ceil(r.y2 * rs - 1e-9))};
  };
  OfxRectI src_bounds = {int(std::floor(inst.src_rod.x1 * rs)),
                         int(std::floor(inst.src_rod.y1 * rs)), 0, 0};
  src_bounds.x2 = src_bounds.x1 + picture.width;
  src_bounds.y2 = src_bounds.y1 + picture.height;
  OfxRectI dst_bounds = g_opt.multires ? to_pixels(inst.out_rod) : src_bounds;

  PropertySet roi_in, roi_out;
  roi_in.set_double(kOfxPropTime, {0.0});
  roi_in.set_double(kOfxImageEffectPropRenderScale, {rs, rs});
  roi_in.set_double(kOfxImageEffectPropRegionOfInterest,
                    {inst.out_rod.x1, inst.out_rod.y1, inst.out_rod.x2, inst.out_rod.y2});
  if (call(plugin, kOfxImageEffectActionGetRegionsOfInterest, inst.handle(), &roi_in, &roi_out) ==
      kOfxStatOK) {
    std::string key = std::string(kOfxImageClipPropRoIPrefix) + kOfxImageEffectSimpleSourceClipName;
    if (roi_out.has(key))
      std::printf("roi %g %g %g %g\n", roi_out.get_double(key, 0), roi_out.get_double(key, 1),
                  roi_out.get_double(key, 2), roi_out.get_double(key, 3));
  }

  if (g_opt.same_buffers) g_opt.threads = 1;
  // Which frames the workers take, in what order: all in order unless --render-order says.
  std::vector<int> order;
  if (g_opt.render_order.empty() || g_opt.render_order == "reverse") {
    for (int t = 0; t < g_opt.frames; ++t) order.push_back(t);
    if (!g_opt.render_order.empty()) std::reverse(order.begin(), order.end());
  } else {
    for (size_t at = 0; at < g_opt.render_order.size();) {
      size_t end = g_opt.render_order.find(',', at);
      if (end == std::string::npos) end = g_opt.render_order.size();
      const std::string item = g_opt.render_order.substr(at, end - at);
      char* stop = nullptr;
      long t = std::strtol(item.c_str(), &stop, 10);
      if (item.empty() || *stop || t < 0 || t >= g_opt.frames)
        die("--render-order: " + item + " is not a frame in 0.." +
            std::to_string(g_opt.frames - 1));
      order.push_back(int(t));
      at = end + 1;
    }
  }
  inst.frames.resize(g_opt.same_buffers ? 1 : g_opt.frames);
  for (int t = 0; t < int(inst.frames.size()); ++t) {
    Frame& f = inst.frames[t];
    f.src.allocate(src_bounds, channels, depth_bytes(picture.descr), depth);
    f.dst.allocate(dst_bounds, channels, depth_bytes(picture.descr), depth);
    fill_from_picture(f.src, picture, t);  // frame t: the picture rolled t pixels right
  }

  // The user edits parameters (presses a button) at frame 0, as in the NLE's inspector; then
  // every string parameter's value shows what the plugin wrote back.
  for (const std::string& name : g_opt.changed) {
    if (!inst.params.find(name)) die("unknown parameter " + name);
    PropertySet in;
    in.set_string(kOfxPropType, {kOfxTypeParameter});
    in.set_string(kOfxPropName, {name});
    in.set_string(kOfxPropChangeReason, {kOfxChangeUserEdited});
    in.set_double(kOfxPropTime, {0.0});
    in.set_double(kOfxImageEffectPropRenderScale, {rs, rs});
    call(plugin, kOfxActionInstanceChanged, inst.handle(), &in, nullptr);
  }
  if (!g_opt.changed.empty())
    for (auto& p : inst.params.list)
      if (p->type == kOfxParamTypeString)
        std::printf("value %s = %s\n", p->name.c_str(), p->s.c_str());

  PropertySet seq_in;
  seq_in.set_double("OfxImageEffectPropFrameRange", {0.0, double(g_opt.frames - 1)});
  seq_in.set_double("OfxImageEffectPropFrameStep", {1.0});
  seq_in.set_int("OfxPropIsInteractive", {0});
  seq_in.set_double(kOfxImageEffectPropRenderScale, {rs, rs});
  call(plugin, kOfxImageEffectActionBeginSequenceRender, inst.handle(), &seq_in, nullptr);

  const bool temporal =
      g_opt.temporal && int(inst.props.get_double(kOfxImageEffectPropTemporalClipAccess)) != 0;

  std::atomic<int> next_frame{0};
  std::atomic<int> failures{0};
  std::mutex print_mutex;
  auto worker = [&] {
    for (int n; (n = next_frame++) < int(order.size());) {
      const int t = order[n];
      Frame& f = inst.frames[frame_index(&inst, t)];
      t_render = RenderContext{true, double(t), {double(t), double(t)}};
      if (temporal) {
        // A host with temporal access asks which source frames the render will read.
        PropertySet fn_in, fn_out;
        fn_in.set_double(kOfxPropTime, {double(t)});
        fn_in.set_double(kOfxImageEffectPropRenderScale, {rs, rs});
        OfxStatus fs = plugin->mainEntry(kOfxImageEffectActionGetFramesNeeded, inst.handle(),
                                         fn_in.handle(), fn_out.handle());
        const std::string key =
            std::string(kOfxImageClipPropFrameRangePrefix) + kOfxImageEffectSimpleSourceClipName;
        std::string text;
        if (fs == kOfxStatOK && fn_out.has(key)) {
          std::lock_guard<std::mutex> lock(fn_out.mutex);
          t_render.needed = fn_out.props[key].d;
          if (t_render.needed.size() % 2) t_render.needed.pop_back();
          for (size_t k = 0; k + 1 < t_render.needed.size(); k += 2)
            text += (k ? ", " : "") + format_time(t_render.needed[k]) + ".." +
                    format_time(t_render.needed[k + 1]);
        } else {
          text = std::to_string(t) + ".." + std::to_string(t) + " (default)";
        }
        std::lock_guard<std::mutex> lock(print_mutex);
        std::printf("frames needed t=%d: %s\n", t, text.c_str());
      }
      PropertySet in, id_out;
      in.set_double(kOfxPropTime, {double(t)});
      in.set_string(kOfxImageEffectPropFieldToRender, {"OfxFieldNone"});
      in.set_int(kOfxImageEffectPropRenderWindow,
                 {dst_bounds.x1, dst_bounds.y1, dst_bounds.x2, dst_bounds.y2});
      in.set_double(kOfxImageEffectPropRenderScale, {rs, rs});
      in.set_int("OfxImageEffectPropSequentialRenderStatus", {0});
      in.set_int("OfxImageEffectPropInteractiveRenderStatus", {0});
      OfxStatus id = plugin->mainEntry(kOfxImageEffectActionIsIdentity, inst.handle(), in.handle(),
                                       id_out.handle());
      OfxStatus s;
      long long us = 0;
      if (id == kOfxStatOK) {
        // Identity: the host copies the named clip itself.
        for (int y = std::max(f.src.bounds.y1, f.dst.bounds.y1);
             y < std::min(f.src.bounds.y2, f.dst.bounds.y2); ++y) {
          int x1 = std::max(f.src.bounds.x1, f.dst.bounds.x1);
          int x2 = std::min(f.src.bounds.x2, f.dst.bounds.x2);
          if (x2 > x1)
            std::memcpy(f.dst.row(y) + (x1 - f.dst.bounds.x1) * f.dst.pixel_bytes(),
                        f.src.row(y) + (x1 - f.src.bounds.x1) * f.src.pixel_bytes(),
                        size_t(x2 - x1) * f.dst.pixel_bytes());
        }
        s = kOfxStatOK;
      } else {
        auto t0 = std::chrono::steady_clock::now();
        std::thread fault;
        if (n == g_opt.kill_worker_at || n == g_opt.stop_worker_at)
          fault = std::thread([n] {
            std::this_thread::sleep_for(std::chrono::milliseconds(g_opt.kill_delay_ms));
            host_conditions::signal_children(n == g_opt.kill_worker_at ? SIGKILL : SIGSTOP, n);
          });
        s = plugin->mainEntry(kOfxImageEffectActionRender, inst.handle(), in.handle(), nullptr);
        if (fault.joinable()) fault.join();
        us = std::chrono::duration_cast<std::chrono::microseconds>(
                 std::chrono::steady_clock::now() - t0)
                 .count();
      }
      t_render = RenderContext{};
      if (s != kOfxStatOK) failures++;
      std::lock_guard<std::mutex> lock(print_mutex);
      std::printf("render t=%d status=%d identity=%d us=%lld\n", t, s, id == kOfxStatOK ? 1 : 0,
                  us);
      std::fflush(stdout);
    }
  };
  std::vector<std::thread> pool;
  for (int k = 0; k < g_opt.threads; ++k) pool.emplace_back(worker);
  for (auto& t : pool) t.join();

  call(plugin, kOfxImageEffectActionEndSequenceRender, inst.handle(), &seq_in, nullptr);

  for (int t = 0; t < int(inst.frames.size()); ++t) {
    Frame& f = inst.frames[t];
    if (!f.src.guards_intact() || !f.dst.guards_intact()) {
      std::fprintf(stderr, "host: error: frame %d: plugin wrote outside an image buffer\n", t);
      status_all = 4;
    }
    if (!g_opt.output.empty()) {
      std::string path = g_opt.output;
      if (inst.frames.size() > 1) {
        size_t dot = path.rfind(".npy");
        path = path.substr(0, dot) + "." + std::to_string(t) + ".npy";
      }
      npy::write(path, picture_from(f.dst, picture.descr));
    }
  }
  if (int live = g_live_images.load()) {
    // Images are valid only inside the action that fetched them: one kept is a leak at best.
    std::fprintf(stderr, "host: error: %d images fetched and never released\n", live);
    status_all = 4;
  }
  std::printf("output bounds %d %d %d %d\n", dst_bounds.x1, dst_bounds.y1, dst_bounds.x2,
              dst_bounds.y2);
  {
    std::lock_guard<std::mutex> lock(inst.message_mutex);
    if (!inst.persistent_message.empty())
      std::printf("persistent message: %s\n", inst.persistent_message.c_str());
  }

  call(plugin, kOfxActionDestroyInstance, inst.handle(), nullptr, nullptr);
  call(plugin, kOfxActionUnload, nullptr, nullptr, nullptr);
  // Plugins that embed Python are never unloaded by real hosts mid-process either.
  std::printf("host: done, %d failed renders, %d messages\n", failures.load(), g_messages.load());
  if (status_all) return status_all;
  return failures ? 3 : 0;
}
