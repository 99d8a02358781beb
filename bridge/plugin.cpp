// The OFX plugin shell: two image effects (Denoise, Super Resolution), one function per action.
// No C++ exception crosses the C ABI: every entry point catches and turns it into a status.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ofx/ofx_abi.h"
#include "python_host.h"

#define KWAFLUX_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

struct Suites {
  OfxHost* host = nullptr;
  const OfxPropertySuiteV1* prop = nullptr;
  const OfxImageEffectSuiteV1* effect = nullptr;
  const OfxParameterSuiteV1* param = nullptr;
  const OfxMessageSuiteV1* message = nullptr;
  const OfxMessageSuiteV2* message2 = nullptr;
  bool host_multires = false;
  bool host_temporal = false;  // the host lets effects fetch frames at other times
  std::string host_name;
};
Suites g;

enum class Kind { Denoise, SuperResolution };

struct ParamSpec {
  const char* name;
  const char* type;
  const char* label;
  const char* hint;
  double dflt, min, max, display_min, display_max;
  std::vector<const char*> options;   // choice labels
  const char* string_mode = nullptr;  // strings: kOfxParamStringIs*, single line by default
};

// The auto-strength controls both effects share: the checkbox (named per effect), and the
// "Measured" label that "Measure noise" fills in from the frame under the playhead.
void add_auto_params(std::vector<ParamSpec>& p, const char* name, const char* label) {
  p.push_back({name,
               kOfxParamTypeBoolean,
               label,
               "Measure each frame's noise and choose the strength from it (errs low: texture is "
               "kept). Off: the slider below decides.",
               1,
               0,
               1,
               0,
               1,
               {}});
}
void add_measure_params(std::vector<ParamSpec>& p) {
  p.push_back({"measuredNoise",
               kOfxParamTypeString,
               "Measured",
               "The noise Measure noise found on the frame under the playhead, and the strength "
               "Auto picks for it.",
               0,
               0,
               0,
               0,
               0,
               {},
               kOfxParamStringIsLabel});
  p.push_back({"measureNoise",
               kOfxParamTypePushButton,
               "Measure noise",
               "Measure the noise of the frame under the playhead; the result shows in Measured.",
               0,
               0,
               0,
               0,
               0,
               {}});
}

// Frames either side of the rendered one that the denoiser sees (kwaflux_ofx/settings.py's
// TEMPORAL_RADIUS_DEFAULT and TEMPORAL_RADIUS_MAX; tests/test_settings.py keeps them equal).
constexpr int kTemporalRadiusDefault = 2;
constexpr int kTemporalRadiusMax = 3;

// The denoise stage's window in time; both effects offer it beside their strength.
void add_temporal_param(std::vector<ParamSpec>& p) {
  p.push_back({"temporalRadius",
               kOfxParamTypeInteger,
               "Temporal radius",
               "Frames on each side of this one the denoiser compares: the same texture under "
               "other noise keeps detail. 0 = this frame only.",
               kTemporalRadiusDefault,
               0,
               kTemporalRadiusMax,
               0,
               kTemporalRadiusMax,
               {}});
}

// The choices' order is their stored value; append only, never reorder.
const std::vector<const char*> kDevices = {"Auto", "CUDA", "CPU"};
// "Auto", then kwaflux_ofx/settings.py's COLOUR_SPACE_LABELS in order (tests/test_settings.py).
const std::vector<const char*> kColourSpaces = {"Auto",
                                                "Display (sRGB / Rec.709)",
                                                "Scene linear (Rec.709 / sRGB primaries)",
                                                "ACEScg",
                                                "ACEScct",
                                                "DaVinci Intermediate (DaVinci Wide Gamut)",
                                                "ARRI LogC3 (EI 800, AWG3)",
                                                "ARRI LogC4 (AWG4)",
                                                "Sony S-Log3 (S-Gamut3.Cine)",
                                                "Panasonic V-Log (V-Gamut)",
                                                "Canon Log 3 (Cinema Gamut)",
                                                "RED Log3G10 (REDWideGamutRGB)",
                                                "Apple Log",
                                                "Blackmagic Film Gen 5"};
// What Auto asks an OFX 1.5 host for, best first (hosts/ofx/colour.py's PREFERRED).
const std::vector<const char*> kPreferredColourspaces = {"srgb_tx", "ofx_display_sdr",
                                                         "lin_rec709_srgb", "ofx_scene_linear"};
const std::vector<const char*> kScales = {"2x", "4x"};
// kwaflux_ofx/settings.py's SrLook labels in order (tests/test_settings.py).
const std::vector<const char*> kLooks = {"Faithful", "Detail"};

std::vector<ParamSpec> params_for(Kind kind) {
  std::vector<ParamSpec> p;
  if (kind == Kind::Denoise) {
    add_auto_params(p, "autoStrength", "Auto strength");
    p.push_back({"strength",
                 kOfxParamTypeDouble,
                 "Strength",
                 "How much noise to remove when Auto strength is off: 0 passes the frame through "
                 "untouched.",
                 0.5,
                 0,
                 1,
                 0,
                 1,
                 {}});
    add_temporal_param(p);
    add_measure_params(p);
  } else {
    p.push_back(
        {"scale", kOfxParamTypeChoice, "Scale", "Upscaling factor.", 0, 0, 0, 0, 0, kScales});
    p.push_back({"look", kOfxParamTypeChoice, "Look",
                 "Faithful: the model closest to the original (default). Detail: a model "
                 "fine-tuned to give back fine texture (hair, fabric, foliage), a little further "
                 "from the original; built in for 2x and 4x. The Model field must be empty.",
                 0, 0, 0, 0, 0, kLooks});
    add_auto_params(p, "autoDenoise", "Auto denoise");
    p.push_back({"denoise",
                 kOfxParamTypeDouble,
                 "Denoise before",
                 "Noise removal before upscaling when Auto denoise is off (0 = none).",
                 0,
                 0,
                 1,
                 0,
                 1,
                 {}});
    add_temporal_param(p);
    add_measure_params(p);
    p.push_back(
        {"sourceScale",
         kOfxParamTypeDouble,
         "Source scale",
         "Hosts without multi-resolution (Resolve): the source media's size relative to the "
         "timeline, e.g. 0.5 for HD media on a UHD timeline. 0 = auto (1 / scale).",
         0,
         0,
         1,
         0,
         1,
         {}});
    p.push_back({"splitView",
                 kOfxParamTypeBoolean,
                 "Split view",
                 "Show the original on the left half, the result on the right.",
                 0,
                 0,
                 1,
                 0,
                 1,
                 {}});
  }
  p.push_back({"model",
               kOfxParamTypeString,
               "Model",
               "Model name (see `kwaflux models`) or path to an .onnx file; empty = built-in.",
               0,
               0,
               0,
               0,
               0,
               {}});
  p.push_back({"tileSize",
               kOfxParamTypeInteger,
               "Tile size",
               "Tile edge in pixels for large frames (0 = from the memory budget).",
               0,
               0,
               8192,
               0,
               2048,
               {}});
  p.push_back(
      {"device", kOfxParamTypeChoice, "Device", "Where the models run.", 0, 0, 0, 0, 0, kDevices});
  p.push_back({"colourSpace", kOfxParamTypeChoice, "Input colour space",
               "What the pixels the host hands over are in; the models see them in display "
               "encoding and the result leaves as it came. Auto: what an OFX 1.5 host says, "
               "scene-linear in Natron, display otherwise (Resolve says nothing: pick the "
               "timeline's space there).",
               0, 0, 0, 0, 0, kColourSpaces});
  return p;
}

struct Instance {
  Kind kind;
  OfxImageEffectHandle handle = nullptr;
  OfxImageClipHandle src = nullptr, dst = nullptr;
  std::map<std::string, OfxParamHandle> params;
  bool message_shown = false;
};

Instance* instance_of(OfxImageEffectHandle h) {
  OfxPropertySetHandle props;
  if (g.effect->getPropertySet(h, &props) != kOfxStatOK) return nullptr;
  void* data = nullptr;
  g.prop->propGetPointer(props, kOfxPropInstanceData, 0, &data);
  return static_cast<Instance*>(data);
}

void show_error(OfxImageEffectHandle h, const std::string& text) {
  std::string line = "Kwaflux: " + text;
  std::string log = kwaflux::log_line(line);
  // Host message boxes are small; the log keeps the whole text.
  if (line.size() > 400) line = line.substr(0, 397) + "...";
  line += " (log: " + log + ")";
  if (g.message2)
    g.message2->setPersistentMessage(h, kOfxMessageError, "", "%s", line.c_str());
  else if (g.message)
    g.message->message(h, kOfxMessageError, "", "%s", line.c_str());
}

// ---------------------------------------------------------------- actions
std::atomic<int> g_loaded{0};  // both effects share one render worker: it ends with the last

OfxStatus on_load() {
  if (!g.host || !g.prop || !g.effect || !g.param) return kOfxStatErrMissingHostFeature;
  g_loaded++;
  return kOfxStatOK;
}

// The render worker ends with the last effect unloaded; an in-process Python stays (it can
// never be restarted).
OfxStatus on_unload() {
  if (--g_loaded <= 0) kwaflux::unload();
  return kOfxStatOK;
}

OfxStatus on_describe(Kind kind, OfxImageEffectHandle h) {
  OfxPropertySetHandle p;
  g.effect->getPropertySet(h, &p);
  const bool sr = kind == Kind::SuperResolution;
  g.prop->propSetString(p, kOfxPropLabel, 0, sr ? "Kwaflux Super Resolution" : "Kwaflux Denoise");
  g.prop->propSetString(p, kOfxPropShortLabel, 0, sr ? "Kwaflux SR" : "Kwaflux Denoise");
  g.prop->propSetString(p, kOfxImageEffectPluginPropGrouping, 0, "Kwaflux");
  g.prop->propSetString(p, kOfxPropPluginDescription, 0,
                        sr ? "AI super-resolution (ONNX models, CUDA or CPU)."
                           : "AI noise removal (ONNX models, CUDA or CPU).");
  g.prop->propSetString(p, kOfxImageEffectPropSupportedContexts, 0, kOfxImageEffectContextFilter);
  g.prop->propSetString(p, kOfxImageEffectPropSupportedContexts, 1, kOfxImageEffectContextGeneral);
  const char* depths[] = {kOfxBitDepthByte, kOfxBitDepthShort, kOfxBitDepthHalf, kOfxBitDepthFloat};
  for (int k = 0; k < 4; ++k)
    g.prop->propSetString(p, kOfxImageEffectPropSupportedPixelDepths, k, depths[k]);
  g.prop->propSetInt(p, kOfxImageEffectPropSupportsMultiResolution, 0, 1);
  // Whole frames only: the models need context around every pixel.
  g.prop->propSetInt(p, kOfxImageEffectPropSupportsTiles, 0, 0);
  // OFX 1.5 hosts may then say what the source is in (and take our preference for it).
  g.prop->propSetString(p, kOfxImageEffectPropColourManagementStyle, 0,
                        kOfxImageEffectPropColourManagementBasic);
  // The denoiser looks at neighbouring frames (the source clip says the same in its context).
  g.prop->propSetInt(p, kOfxImageEffectPropTemporalClipAccess, 0, 1);
  g.prop->propSetInt(p, kOfxImageEffectPropSupportsMultipleClipDepths, 0, 0);
  g.prop->propSetInt(p, kOfxImageEffectPropSupportsMultipleClipPARs, 0, 0);
  // Renders on one instance may overlap: state is read-only after CreateInstance, Python runs
  // under the GIL and the engine is thread-safe (tests render many threads on one instance).
  g.prop->propSetString(p, kOfxImageEffectPluginRenderThreadSafety, 0,
                        kOfxImageEffectRenderFullySafe);
  g.prop->propSetInt(p, kOfxImageEffectPluginPropHostFrameThreading, 0, 0);
  g.prop->propSetString(p, kOfxImageEffectPropCudaRenderSupported, 0, "false");
  return kOfxStatOK;
}

void define_param(OfxParamSetHandle set, const ParamSpec& s) {
  OfxPropertySetHandle p;
  if (g.param->paramDefine(set, s.type, s.name, &p) != kOfxStatOK) return;
  g.prop->propSetString(p, kOfxPropLabel, 0, s.label);
  g.prop->propSetString(p, kOfxParamPropHint, 0, s.hint);
  g.prop->propSetString(p, kOfxParamPropScriptName, 0, s.name);
  std::string type = s.type;
  if (type == kOfxParamTypeDouble) {
    g.prop->propSetDouble(p, kOfxParamPropDefault, 0, s.dflt);
    // Resolve clamps numbers that lack a display range: always give both.
    g.prop->propSetDouble(p, kOfxParamPropMin, 0, s.min);
    g.prop->propSetDouble(p, kOfxParamPropMax, 0, s.max);
    g.prop->propSetDouble(p, kOfxParamPropDisplayMin, 0, s.display_min);
    g.prop->propSetDouble(p, kOfxParamPropDisplayMax, 0, s.display_max);
    g.prop->propSetDouble(p, kOfxParamPropIncrement, 0, 0.01);
    g.prop->propSetInt(p, kOfxParamPropDigits, 0, 2);
  } else if (type == kOfxParamTypeInteger || type == kOfxParamTypeBoolean) {
    g.prop->propSetInt(p, kOfxParamPropDefault, 0, int(s.dflt));
    if (type == kOfxParamTypeInteger) {
      g.prop->propSetInt(p, kOfxParamPropMin, 0, int(s.min));
      g.prop->propSetInt(p, kOfxParamPropMax, 0, int(s.max));
      g.prop->propSetInt(p, kOfxParamPropDisplayMin, 0, int(s.display_min));
      g.prop->propSetInt(p, kOfxParamPropDisplayMax, 0, int(s.display_max));
    }
  } else if (type == kOfxParamTypeChoice) {
    for (size_t k = 0; k < s.options.size(); ++k)
      g.prop->propSetString(p, kOfxParamPropChoiceOption, int(k), s.options[k]);
    g.prop->propSetInt(p, kOfxParamPropDefault, 0, int(s.dflt));
  } else if (type == kOfxParamTypeString) {
    g.prop->propSetString(p, kOfxParamPropDefault, 0, "");
    g.prop->propSetString(p, kOfxParamPropStringMode, 0,
                          s.string_mode ? s.string_mode : kOfxParamStringIsSingleLine);
  }
  const bool display_only = type == kOfxParamTypePushButton ||
                            (s.string_mode && std::string(s.string_mode) == kOfxParamStringIsLabel);
  // A label the plugin fills in and a button change no pixels: no re-render for them.
  if (display_only) g.prop->propSetInt(p, kOfxParamPropEvaluateOnChange, 0, 0);
  // Changing a model or device mid-shot makes no sense.
  g.prop->propSetInt(p, kOfxParamPropAnimates, 0,
                     type == kOfxParamTypeDouble || type == kOfxParamTypeBoolean ? 1 : 0);
}

OfxStatus on_describe_in_context(Kind kind, OfxImageEffectHandle h) {
  for (const char* name : {kOfxImageEffectSimpleSourceClipName, kOfxImageEffectOutputClipName}) {
    OfxPropertySetHandle clip;
    if (g.effect->clipDefine(h, name, &clip) != kOfxStatOK) return kOfxStatFailed;
    g.prop->propSetString(clip, kOfxImageEffectPropSupportedComponents, 0, kOfxImageComponentRGBA);
    g.prop->propSetString(clip, kOfxImageEffectPropSupportedComponents, 1, kOfxImageComponentRGB);
    g.prop->propSetInt(clip, kOfxImageEffectPropSupportsTiles, 0, 0);
    // Only the source is read at other times; the output is written at the render time only.
    g.prop->propSetInt(clip, kOfxImageEffectPropTemporalClipAccess, 0,
                       std::string(name) == kOfxImageEffectSimpleSourceClipName ? 1 : 0);
  }
  OfxParamSetHandle set;
  if (g.effect->getParamSet(h, &set) != kOfxStatOK) return kOfxStatFailed;
  for (const ParamSpec& s : params_for(kind)) define_param(set, s);
  return kOfxStatOK;
}

OfxStatus on_create_instance(Kind kind, OfxImageEffectHandle h) {
  auto inst = std::make_unique<Instance>();
  inst->kind = kind;
  inst->handle = h;
  g.effect->clipGetHandle(h, kOfxImageEffectSimpleSourceClipName, &inst->src, nullptr);
  g.effect->clipGetHandle(h, kOfxImageEffectOutputClipName, &inst->dst, nullptr);
  OfxParamSetHandle set;
  g.effect->getParamSet(h, &set);
  for (const ParamSpec& s : params_for(kind)) {
    OfxParamHandle ph = nullptr;
    if (g.param->paramGetHandle(set, s.name, &ph, nullptr) == kOfxStatOK) inst->params[s.name] = ph;
  }
  OfxPropertySetHandle props;
  g.effect->getPropertySet(h, &props);
  g.prop->propSetPointer(props, kOfxPropInstanceData, 0, inst.release());
  return kOfxStatOK;
}

OfxStatus on_destroy_instance(OfxImageEffectHandle h) {
  Instance* inst = instance_of(h);
  OfxPropertySetHandle props;
  g.effect->getPropertySet(h, &props);
  g.prop->propSetPointer(props, kOfxPropInstanceData, 0, nullptr);
  delete inst;
  return kOfxStatOK;
}

double get_double(Instance* inst, const char* name, OfxTime t, double dflt) {
  auto it = inst->params.find(name);
  double v = dflt;
  if (it != inst->params.end()) g.param->paramGetValueAtTime(it->second, t, &v);
  return v;
}
int get_int(Instance* inst, const char* name, OfxTime t, int dflt) {
  auto it = inst->params.find(name);
  int v = dflt;
  if (it != inst->params.end()) g.param->paramGetValueAtTime(it->second, t, &v);
  return v;
}
std::string get_string(Instance* inst, const char* name, OfxTime t) {
  auto it = inst->params.find(name);
  const char* v = nullptr;
  if (it != inst->params.end()) g.param->paramGetValueAtTime(it->second, t, &v);
  return v ? v : "";
}

// The factor is read from the chosen label ("2x" -> 2), so kScales is the one list in C++
// (kwaflux_ofx/settings.py's SR_EFFECT_SCALES; tests/test_settings.py keeps the two equal).
int sr_scale(Instance* inst, OfxTime t) {
  const int i = get_int(inst, "scale", t, 0);
  return std::atoi(kScales[i >= 0 && i < int(kScales.size()) ? i : 0]);
}

// Multi-resolution: SR's output is the source's region of definition times the scale.
OfxStatus on_region_of_definition(OfxImageEffectHandle h, OfxPropertySetHandle in,
                                  OfxPropertySetHandle out) {
  Instance* inst = instance_of(h);
  if (!inst || inst->kind != Kind::SuperResolution || !g.host_multires) return kOfxStatReplyDefault;
  OfxTime t = 0;
  g.prop->propGetDouble(in, kOfxPropTime, 0, &t);
  OfxRectD rod;
  if (g.effect->clipGetRegionOfDefinition(inst->src, t, &rod) != kOfxStatOK)
    return kOfxStatReplyDefault;
  const double s = sr_scale(inst, t);
  const double r[4] = {rod.x1 * s, rod.y1 * s, rod.x2 * s, rod.y2 * s};
  g.prop->propSetDoubleN(out, kOfxImageEffectPropRegionOfDefinition, 4, r);
  return kOfxStatOK;
}

// The models look at every pixel's neighbourhood and frames are rendered whole: ask for the
// source's full region of definition.
OfxStatus on_regions_of_interest(OfxImageEffectHandle h, OfxPropertySetHandle in,
                                 OfxPropertySetHandle out) {
  Instance* inst = instance_of(h);
  if (!inst) return kOfxStatReplyDefault;
  OfxTime t = 0;
  g.prop->propGetDouble(in, kOfxPropTime, 0, &t);
  OfxRectD rod;
  if (g.effect->clipGetRegionOfDefinition(inst->src, t, &rod) != kOfxStatOK)
    return kOfxStatReplyDefault;
  const double r[4] = {rod.x1, rod.y1, rod.x2, rod.y2};
  g.prop->propSetDoubleN(
      out, (std::string(kOfxImageClipPropRoIPrefix) + kOfxImageEffectSimpleSourceClipName).c_str(),
      4, r);
  return kOfxStatOK;
}

OfxStatus on_is_identity(OfxImageEffectHandle h, OfxPropertySetHandle in,
                         OfxPropertySetHandle out) {
  Instance* inst = instance_of(h);
  if (!inst || inst->kind != Kind::Denoise) return kOfxStatReplyDefault;
  OfxTime t = 0;
  g.prop->propGetDouble(in, kOfxPropTime, 0, &t);
  if (get_int(inst, "autoStrength", t, 1) || get_double(inst, "strength", t, 0.5) > 0)
    return kOfxStatReplyDefault;
  // Strength 0 is an exact pass-through: let the host copy the source.
  g.prop->propSetString(out, kOfxPropName, 0, kOfxImageEffectSimpleSourceClipName);
  return kOfxStatOK;
}

// Whether the effect's denoise stage runs at time t: Auto on, or a strength above 0.
bool denoise_on(Instance* inst, OfxTime t) {
  if (inst->kind == Kind::Denoise)
    return get_int(inst, "autoStrength", t, 1) || get_double(inst, "strength", t, 0.5) > 0;
  return get_int(inst, "autoDenoise", t, 1) || get_double(inst, "denoise", t, 0) > 0;
}

// The frames either side of t the denoiser uses: 0 when it does not run, so no neighbour is
// fetched for nothing. Scripts can send any integer; the range is the parameter's.
int temporal_radius(Instance* inst, OfxTime t) {
  if (!denoise_on(inst, t)) return 0;
  return std::clamp(get_int(inst, "temporalRadius", t, kTemporalRadiusDefault), 0,
                    kTemporalRadiusMax);
}

// The source clip's first and last frame: the clip's own range, else the effect's. False when
// the host gives neither (then a fetch beyond the clip simply fails).
bool source_frame_range(Instance* inst, double* first, double* last) {
  double r[2] = {0, 0};
  OfxPropertySetHandle props = nullptr;
  bool ok = g.effect->clipGetPropertySet(inst->src, &props) == kOfxStatOK && props &&
            g.prop->propGetDoubleN(props, kOfxImageEffectPropFrameRange, 2, r) == kOfxStatOK;
  if (!ok && g.effect->getPropertySet(inst->handle, &props) == kOfxStatOK && props)
    ok = g.prop->propGetDoubleN(props, kOfxImageEffectPropFrameRange, 2, r) == kOfxStatOK;
  if (!ok || !(r[0] <= r[1])) return false;  // NaN or an inverted range says nothing
  *first = r[0];
  *last = r[1];
  return true;
}

// [t - r, t + r] of the source, clamped to the clip's frames (t itself always included).
OfxStatus on_frames_needed(OfxImageEffectHandle h, OfxPropertySetHandle in,
                           OfxPropertySetHandle out) {
  Instance* inst = instance_of(h);
  if (!inst || !in || !out) return kOfxStatReplyDefault;
  OfxTime t = 0;
  g.prop->propGetDouble(in, kOfxPropTime, 0, &t);
  const int r = temporal_radius(inst, t);
  double range[2] = {t - r, t + r};
  double first = 0, last = 0;
  if (source_frame_range(inst, &first, &last)) {
    range[0] = std::max(range[0], std::min(first, t));
    range[1] = std::min(range[1], std::max(last, t));
  }
  g.prop->propSetDoubleN(
      out,
      (std::string(kOfxImageClipPropFrameRangePrefix) + kOfxImageEffectSimpleSourceClipName)
          .c_str(),
      2, range);
  return kOfxStatOK;
}

// Releases a fetched image whatever path the render takes. Movable, so neighbours can be held
// in a vector; never copied, so each image is released once.
struct ImageHold {
  OfxPropertySetHandle img = nullptr;
  ImageHold() = default;
  explicit ImageHold(OfxPropertySetHandle i) : img(i) {}
  ImageHold(ImageHold&& o) noexcept : img(o.img) { o.img = nullptr; }
  ImageHold(const ImageHold&) = delete;
  ImageHold& operator=(const ImageHold&) = delete;
  ImageHold& operator=(ImageHold&&) = delete;
  ~ImageHold() {
    if (img) g.effect->clipReleaseImage(img);
  }
};

bool read_image(OfxPropertySetHandle img, kwaflux::HostImage& out) {
  char* depth = nullptr;
  char* comps = nullptr;
  int row_bytes = 0;
  if (g.prop->propGetPointer(img, kOfxImagePropData, 0, &out.data) != kOfxStatOK ||
      g.prop->propGetIntN(img, kOfxImagePropBounds, 4, &out.bounds.x1) != kOfxStatOK ||
      g.prop->propGetInt(img, kOfxImagePropRowBytes, 0, &row_bytes) != kOfxStatOK ||
      g.prop->propGetString(img, kOfxImageEffectPropPixelDepth, 0, &depth) != kOfxStatOK ||
      g.prop->propGetString(img, kOfxImageEffectPropComponents, 0, &comps) != kOfxStatOK)
    return false;
  char* premult = nullptr;
  if (g.prop->propGetString(img, kOfxImageEffectPropPreMultiplication, 0, &premult) == kOfxStatOK &&
      premult)
    out.premultiplication = premult;
  out.row_bytes = row_bytes;
  out.depth = depth ? depth : "";
  std::string c = comps ? comps : "";
  out.channels = c == kOfxImageComponentRGBA ? 4 : c == kOfxImageComponentRGB ? 3 : 0;
  return out.data != nullptr;
}

// Why rows of `im` cannot be read safely ("" when they can): a row shorter than the width would
// make rows overlap, and reading or writing them could run past the host's buffer.
std::string rows_problem(const kwaflux::HostImage& im) {
  const long bpc = im.depth == kOfxBitDepthByte ? 1 : im.depth == kOfxBitDepthFloat ? 4 : 2;
  const long row = long(std::max(0, im.bounds.x2 - im.bounds.x1)) * im.channels * bpc;
  if (std::labs(im.row_bytes) >= row) return "";
  return "the host's image rows (" + std::to_string(im.row_bytes) +
         " bytes) are shorter than its width needs (" + std::to_string(row) + ")";
}

// Every parameter's value at time t, by name, as Python gets them (push buttons have none).
std::vector<kwaflux::ParamValue> param_values(Instance* inst, OfxTime t) {
  std::vector<kwaflux::ParamValue> values;
  for (const ParamSpec& s : params_for(inst->kind)) {
    if (std::string(s.type) == kOfxParamTypePushButton) continue;
    kwaflux::ParamValue v;
    v.name = s.name;
    std::string type = s.type;
    if (type == kOfxParamTypeDouble) {
      v.kind = kwaflux::ParamValue::Double;
      v.d = get_double(inst, s.name, t, s.dflt);
    } else if (type == kOfxParamTypeString) {
      v.kind = kwaflux::ParamValue::String;
      v.s = get_string(inst, s.name, t);
    } else {
      v.kind = type == kOfxParamTypeBoolean ? kwaflux::ParamValue::Bool : kwaflux::ParamValue::Int;
      v.i = get_int(inst, s.name, t, int(s.dflt));
      if (type == kOfxParamTypeChoice) {
        // Hand Python the meaning, not the menu position.
        v.kind = kwaflux::ParamValue::String;
        const auto& opts = s.options;
        v.s = v.i >= 0 && v.i < int(opts.size()) ? opts[v.i] : opts[0];
      }
    }
    values.push_back(std::move(v));
  }
  // What an OFX 1.5 colour-managed host says the source is in (Auto reads it in Python).
  OfxPropertySetHandle clip_props = nullptr;
  char* space = nullptr;
  if (inst->src && g.effect->clipGetPropertySet(inst->src, &clip_props) == kOfxStatOK &&
      g.prop->propGetString(clip_props, kOfxImageClipPropColourspace, 0, &space) == kOfxStatOK &&
      space && *space) {
    kwaflux::ParamValue v;
    v.name = "clipColourspace";
    v.kind = kwaflux::ParamValue::String;
    v.s = space;
    values.push_back(std::move(v));
  }
  return values;
}

// An OFX 1.5 host that manages colour is asked for the models' own encoding, or linear light.
OfxStatus on_clip_preferences(OfxImageEffectHandle h, OfxPropertySetHandle out) {
  Instance* inst = instance_of(h);
  if (!inst || !out) return kOfxStatReplyDefault;
  const std::string key = std::string(kOfxImageClipPropPreferredColourspaces) + "_" +
                          kOfxImageEffectSimpleSourceClipName;
  for (size_t k = 0; k < kPreferredColourspaces.size(); ++k)
    if (g.prop->propSetString(out, key.c_str(), int(k), kPreferredColourspaces[k]) != kOfxStatOK)
      return kOfxStatReplyDefault;
  return kOfxStatOK;
}

std::atomic<bool> g_no_temporal_logged{false};

std::string time_text(OfxTime t) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", t);
  return buf;
}

// The source frames around t that the denoiser sees, into call.neighbours (offset, image). A
// frame the host cannot give, or one whose size, depth or components differ from t's, is
// left out: the window is smaller there, the render goes on.
void fetch_neighbours(Instance* inst, OfxTime t, kwaflux::RenderCall& call,
                      std::vector<ImageHold>& held) {
  const int r = temporal_radius(inst, t);
  if (r == 0) return;
  if (!g.host_temporal) {
    if (!g_no_temporal_logged.exchange(true))
      kwaflux::log_line("the host " + g.host_name +
                        " offers no temporal clip access: Temporal radius is ignored, every "
                        "frame is denoised on its own");
    return;
  }
  double first = -HUGE_VAL, last = HUGE_VAL;
  source_frame_range(inst, &first, &last);
  held.reserve(2 * r);
  for (int k = -r; k <= r; ++k) {
    const OfxTime nt = t + k;
    if (k == 0 || nt < first || nt > last) continue;  // beyond the clip: a shorter window
    OfxPropertySetHandle img = nullptr;
    if (g.effect->clipGetImage(inst->src, nt, nullptr, &img) != kOfxStatOK || !img) {
      kwaflux::log_line("render t=" + time_text(t) + ": no source frame at t=" + time_text(nt) +
                        "; denoising without it");
      continue;
    }
    held.emplace_back(img);
    kwaflux::HostImage im;
    const kwaflux::HostImage& c = call.src;
    if (!read_image(img, im) || !rows_problem(im).empty() || im.depth != c.depth ||
        im.channels != c.channels || im.bounds.x1 != c.bounds.x1 || im.bounds.y1 != c.bounds.y1 ||
        im.bounds.x2 != c.bounds.x2 || im.bounds.y2 != c.bounds.y2) {
      kwaflux::log_line("render t=" + time_text(t) + ": the source frame at t=" + time_text(nt) +
                        " differs from this one in size, depth or components; denoising "
                        "without it");
      continue;
    }
    call.neighbours.emplace_back(k, im);
  }
}

OfxStatus on_render(OfxImageEffectHandle h, OfxPropertySetHandle in) {
  Instance* inst = instance_of(h);
  if (!inst) return kOfxStatErrBadHandle;
  kwaflux::RenderCall call;
  g.prop->propGetDouble(in, kOfxPropTime, 0, &call.time);
  g.prop->propGetIntN(in, kOfxImageEffectPropRenderWindow, 4, &call.window.x1);
  g.prop->propGetDoubleN(in, kOfxImageEffectPropRenderScale, 2, call.render_scale);
  const OfxTime t = call.time;

  ImageHold src, dst;
  if (g.effect->clipGetImage(inst->dst, t, nullptr, &dst.img) != kOfxStatOK || !dst.img) {
    show_error(h, "the host gave no output image");
    return kOfxStatFailed;
  }
  if (g.effect->clipGetImage(inst->src, t, nullptr, &src.img) != kOfxStatOK || !src.img) {
    show_error(h, "no source image (is the input connected?)");
    return kOfxStatFailed;
  }
  if (!read_image(src.img, call.src) || !read_image(dst.img, call.dst)) {
    show_error(h, "the host's image lacks data, bounds, row bytes, depth or components");
    return kOfxStatFailed;
  }
  if (call.src.channels == 0 || call.src.channels != call.dst.channels ||
      call.src.depth != call.dst.depth) {
    show_error(h, "source and output must both be RGB or RGBA of the same depth");
    return kOfxStatFailed;
  }
  for (const kwaflux::HostImage* im : {&call.src, &call.dst}) {
    if (std::string why = rows_problem(*im); !why.empty()) {
      show_error(h, why);
      return kOfxStatFailed;
    }
  }
  // Declared after src and dst, so the neighbours are released first; Python's views of them
  // are gone by then (kwaflux::render drops every Python object before it returns).
  std::vector<ImageHold> neighbours;
  fetch_neighbours(inst, t, call, neighbours);
  call.effect = inst->kind == Kind::Denoise ? "denoise" : "sr";
  call.host_multires = g.host_multires;
  call.host_name = g.host_name;
  call.params = param_values(inst, t);
  std::string err = kwaflux::render(call);
  if (!err.empty()) {
    show_error(h, err);
    inst->message_shown = true;
    return kOfxStatFailed;
  }
  if (inst->message_shown && g.message2) {
    g.message2->clearPersistentMessage(h);
    inst->message_shown = false;
  }
  return kOfxStatOK;
}

// "Measure noise" (or switching Auto on): measure the source frame under the playhead and show
// the result in the "Measured" label. Images may be fetched in this action, and parameters set.
OfxStatus on_instance_changed(OfxImageEffectHandle h, OfxPropertySetHandle in) {
  Instance* inst = instance_of(h);
  if (!inst || !in) return kOfxStatReplyDefault;
  char *type = nullptr, *name = nullptr, *reason = nullptr;
  g.prop->propGetString(in, kOfxPropType, 0, &type);
  g.prop->propGetString(in, kOfxPropName, 0, &name);
  g.prop->propGetString(in, kOfxPropChangeReason, 0, &reason);
  if (!type || !name || !reason || std::string(type) != kOfxTypeParameter ||
      std::string(reason) != kOfxChangeUserEdited)
    return kOfxStatReplyDefault;
  OfxTime t = 0;
  g.prop->propGetDouble(in, kOfxPropTime, 0, &t);
  const std::string changed = name;
  const char* auto_name = inst->kind == Kind::Denoise ? "autoStrength" : "autoDenoise";
  if (changed != "measureNoise" && !(changed == auto_name && get_int(inst, auto_name, t, 1)))
    return kOfxStatReplyDefault;
  std::string text;
  ImageHold src;
  kwaflux::RenderCall call;
  call.time = t;
  call.effect = inst->kind == Kind::Denoise ? "denoise" : "sr";
  call.host_multires = g.host_multires;
  call.host_name = g.host_name;
  if (g.effect->clipGetImage(inst->src, t, nullptr, &src.img) != kOfxStatOK || !src.img) {
    text = "not measured: no source frame here";
  } else if (!read_image(src.img, call.src)) {
    text = "not measured: the host's image lacks data, bounds, row bytes, depth or components";
  } else {
    call.params = param_values(inst, t);
    std::string err = kwaflux::measure(call, &text);
    if (!err.empty()) text = "not measured: " + err;
  }
  auto it = inst->params.find("measuredNoise");
  if (it != inst->params.end()) g.param->paramSetValue(it->second, text.c_str());
  kwaflux::log_line("measured at t=" + std::to_string(t) + ": " + text);
  return kOfxStatOK;
}

// Private action used by `kwaflux ofx doctor` through the test host.
OfxStatus on_doctor(OfxPropertySetHandle out) {
  bool ok = false;
  std::string report = kwaflux::doctor_report(&ok);
  if (out) g.prop->propSetString(out, "KwafluxPropReport", 0, report.c_str());
  return ok ? kOfxStatOK : kOfxStatFailed;
}

OfxStatus main_entry(Kind kind, const char* action, const void* handle, OfxPropertySetHandle in,
                     OfxPropertySetHandle out) noexcept {
  try {
    if (!action) return kOfxStatErrBadHandle;
    auto h = static_cast<OfxImageEffectHandle>(const_cast<void*>(handle));
    const std::string a = action;
    if (a == kOfxActionLoad) return on_load();
    if (a == kOfxActionUnload) return on_unload();
    if (a == kOfxActionDescribe) return on_describe(kind, h);
    if (a == kOfxImageEffectActionDescribeInContext) return on_describe_in_context(kind, h);
    if (a == kOfxActionCreateInstance) return on_create_instance(kind, h);
    if (a == kOfxActionDestroyInstance) return on_destroy_instance(h);
    if (a == kOfxImageEffectActionGetRegionOfDefinition) return on_region_of_definition(h, in, out);
    if (a == kOfxImageEffectActionGetRegionsOfInterest) return on_regions_of_interest(h, in, out);
    if (a == kOfxImageEffectActionIsIdentity) return on_is_identity(h, in, out);
    if (a == kOfxImageEffectActionGetClipPreferences) return on_clip_preferences(h, out);
    if (a == kOfxImageEffectActionGetFramesNeeded) return on_frames_needed(h, in, out);
    if (a == kOfxImageEffectActionRender) return on_render(h, in);
    if (a == kOfxActionInstanceChanged) return on_instance_changed(h, in);
    if (a == kOfxImageEffectActionBeginSequenceRender ||
        a == kOfxImageEffectActionEndSequenceRender)
      return kOfxStatOK;
    if (a == "KwafluxActionDoctor") return on_doctor(out);
    return kOfxStatReplyDefault;
  } catch (const std::exception& e) {
    kwaflux::log_line(std::string("action ") + action + " failed: " + e.what());
    return kOfxStatErrFatal;
  } catch (...) {
    kwaflux::log_line(std::string("action ") + action + " failed");
    return kOfxStatErrFatal;
  }
}

OfxStatus denoise_entry(const char* a, const void* h, OfxPropertySetHandle i,
                        OfxPropertySetHandle o) {
  return main_entry(Kind::Denoise, a, h, i, o);
}
OfxStatus sr_entry(const char* a, const void* h, OfxPropertySetHandle i, OfxPropertySetHandle o) {
  return main_entry(Kind::SuperResolution, a, h, i, o);
}

void set_host(OfxHost* host) {
  if (!host || g.host == host) return;
  g.host = host;
  g.prop =
      static_cast<const OfxPropertySuiteV1*>(host->fetchSuite(host->host, kOfxPropertySuite, 1));
  g.effect = static_cast<const OfxImageEffectSuiteV1*>(
      host->fetchSuite(host->host, kOfxImageEffectSuite, 1));
  g.param =
      static_cast<const OfxParameterSuiteV1*>(host->fetchSuite(host->host, kOfxParameterSuite, 1));
  g.message =
      static_cast<const OfxMessageSuiteV1*>(host->fetchSuite(host->host, kOfxMessageSuite, 1));
  g.message2 =
      static_cast<const OfxMessageSuiteV2*>(host->fetchSuite(host->host, kOfxMessageSuite, 2));
  if (g.prop) {
    int multires = 0;
    if (g.prop->propGetInt(host->host, kOfxImageEffectPropSupportsMultiResolution, 0, &multires) ==
        kOfxStatOK)
      g.host_multires = multires != 0;
    // A host that does not say it offers temporal access may hand the current frame for any
    // time: neighbours are fetched only where it says so.
    int temporal = 0;
    g.host_temporal = g.prop->propGetInt(host->host, kOfxImageEffectPropTemporalClipAccess, 0,
                                         &temporal) == kOfxStatOK &&
                      temporal != 0;
    char* name = nullptr;
    if (g.prop->propGetString(host->host, kOfxPropName, 0, &name) == kOfxStatOK && name)
      g.host_name = name;
  }
}

OfxPlugin g_plugins[] = {
    {kOfxImageEffectPluginApi, 1, "org.kwaflux.Denoise", 0, 1, set_host, denoise_entry},
    {kOfxImageEffectPluginApi, 1, "org.kwaflux.SuperResolution", 0, 1, set_host, sr_entry},
};

}  // namespace

KWAFLUX_EXPORT int OfxGetNumberOfPlugins(void) { return 2; }

KWAFLUX_EXPORT OfxPlugin* OfxGetPlugin(int nth) {
  return nth >= 0 && nth < 2 ? &g_plugins[nth] : nullptr;
}
