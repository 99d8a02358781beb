// The embedded interpreter seen from the OFX side: start it once, hand it frames, report errors.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "ofx/ofx_abi.h"

namespace kwaflux {

// One host image as the host gave it: no copy is ever made of the pixels.
struct HostImage {
  void* data = nullptr;
  OfxRectI bounds{0, 0, 0, 0};
  long row_bytes = 0;  // may be negative (rows go down in memory)
  std::string depth;   // kOfxBitDepth*
  int channels = 0;    // 3 or 4
  std::string
      premultiplication;  // kOfxImageOpaque / kOfxImagePreMultiplied / kOfxImageUnPreMultiplied
};

struct ParamValue {
  enum Kind { Double, Int, Bool, String } kind = Double;
  std::string name;
  double d = 0;
  int i = 0;
  std::string s;
};

struct RenderCall {
  std::string effect;  // "denoise" or "sr"
  HostImage src, dst;
  OfxRectI window{0, 0, 0, 0};
  double render_scale[2] = {1, 1};
  double time = 0;
  bool host_multires = true;
  std::string host_name;
  std::vector<ParamValue> params;
  // Source frames around `time` for the denoiser, as (offset in frames, image): offsets in
  // -radius..radius, never 0, in time order; frames the host could not give are absent.
  std::vector<std::pair<int, HostImage>> neighbours;
};

// Runs ofx_entry.render. Returns "" on success, else one line for the user; details are logged.
std::string render(const RenderCall& call);

// Runs ofx_entry.measure on call.src (call.dst is unused): the noise the source frame shows and
// the strength "Auto" picks, as one line for the effect's "Measured" label. Returns "" or an error.
std::string measure(const RenderCall& call, std::string* text);

// A report of what works (Python found, models, providers), for `kwaflux ofx doctor`.
std::string doctor_report(bool* ok);

// The host unloads the plugin: ends the render worker if one runs.
void unload();

// Appends a line to the per-user log file; returns its path.
std::string log_line(const std::string& line);

}  // namespace kwaflux
