// OFX boundary fuzzer: the test host's whole action sequence (load, describe, create instance,
// regions, render on N threads, destroy, unload) run many times in one process, each time with a
// random image size, depth, components, rowBytes (negative, padded), bounds offset, render scale,
// host flavour, parameter values (out-of-range ones included), temporal radius, render order and
// neighbours that fail or come in another size. One process keeps the embedded Python warm, so
// thousands of configurations cost seconds, not an interpreter start each.
//
// Built by reliability/campaigns.py (optionally with -fsanitize=address,undefined). The host's
// source is included, not copied: its main() becomes a function this loop calls.
//
//   ofx-fuzz --bundle B --models DIR --work DIR --seed S --start I --count N [--max-side M]
//            [--cases I,J,...] [--host multires|nomultires|resolve]
// DIR holds sr.onnx, dn.onnx and fail.onnx (and registry/ for the default names). Prints "fuzz I
// config ..." before each case and "fuzz I rc=R" after it (R is the host's exit code: 0 ok, 3
// failed renders, 4 buffer overrun).

#define main kwaflux_test_host_main
#include "../bridge/test_host/host.cpp"
#undef main

#include <algorithm>
#include <cstdio>
#include <random>
#include <sstream>

namespace {

struct Fuzz {
  std::mt19937_64 rng;
  explicit Fuzz(uint64_t seed) : rng(seed) {}
  int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
  double real(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng); }
  bool chance(double p) { return real(0.0, 1.0) < p; }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[size_t(uniform(0, int(v.size()) - 1))];
  }
};

int side(Fuzz& f, int max_side) {
  double r = f.real(0.0, 1.0);
  int s = r < 0.15   ? f.uniform(1, 3)
          : r < 0.6  ? f.uniform(4, 40)
          : r < 0.93 ? f.uniform(41, 200)
                     : f.uniform(201, 4096);
  return std::min(s, max_side);  // the bounds above stay valid whatever max_side is
}

std::string number(Fuzz& f) {
  // Parameter values a host or a script could send: valid, just outside, absurd, not numbers.
  static const std::vector<std::string> odd = {
      "nan", "inf", "-inf", "-1", "2", "1e300", "-1e300", "1e-300", "0", "1", "0.9999999"};
  if (f.chance(0.5)) {
    std::ostringstream s;
    s << f.real(0.0, 1.0);
    return s.str();
  }
  return f.pick(odd);
}

std::string integer(Fuzz& f, int lo, int hi) {
  static const std::vector<std::string> odd = {"-2147483648", "2147483647", "-1", "0",     "1",
                                               "31",          "32",         "33", "100000"};
  if (f.chance(0.6)) return std::to_string(f.uniform(lo, hi));
  return f.pick(odd);
}

void write_picture(Fuzz& f, const std::string& path, int w, int h, int c,
                   const std::string& descr) {
  npy::Image img;
  img.descr = descr;
  img.width = w;
  img.height = h;
  img.channels = c;
  img.bytes.resize(img.row_bytes() * size_t(h));
  const int bpc = img.bytes_per_channel();
  const size_t n = img.bytes.size() / size_t(bpc);
  const bool wild = f.chance(0.1);  // float images with NaN, inf, negatives and > 1 values
  for (size_t k = 0; k < n; ++k) {
    unsigned char* p = img.bytes.data() + k * bpc;
    uint32_t r = uint32_t(f.rng());
    if (descr == "|u1") {
      p[0] = uint8_t(r);
    } else if (descr == "<u2") {
      uint16_t v = uint16_t(r);
      std::memcpy(p, &v, 2);
    } else if (descr == "<f2") {
      uint16_t v = uint16_t(0x3000 + (r % 0x0C00));            // half floats in about 0.125..1
      if (wild && r % 97 == 0) v = (r & 1) ? 0x7E00 : 0xFC00;  // NaN, -inf
      std::memcpy(p, &v, 2);
    } else {
      float v = float(r % 100000) / 100000.0f;
      if (wild && r % 97 == 0)
        v = (r & 1) ? NAN : -INFINITY;
      else if (wild && r % 13 == 0)
        v = (r & 2) ? -0.5f : 7.0f;
      std::memcpy(p, &v, 4);
    }
  }
  npy::write(path, img);
}

}  // namespace

int main(int argc, char** argv) {
  std::string bundle, models, work, host = "multires";
  uint64_t seed = 1;
  int start = 0, count = 100, max_side = 512;
  std::vector<int> cases;
  for (int k = 1; k + 1 < argc; k += 2) {
    std::string a = argv[k], v = argv[k + 1];
    if (a == "--bundle")
      bundle = v;
    else if (a == "--models")
      models = v;
    else if (a == "--work")
      work = v;
    else if (a == "--seed")
      seed = std::stoull(v);
    else if (a == "--start")
      start = std::stoi(v);
    else if (a == "--count")
      count = std::stoi(v);
    else if (a == "--max-side")
      max_side = std::max(1, std::stoi(v));
    else if (a == "--host")
      host = v;                 // multires (Natron-like), nomultires, resolve
    else if (a == "--cases") {  // replay chosen cases, in this order (to reduce a finding)
      for (size_t at = 0; at < v.size();) {
        size_t end = v.find(',', at);
        if (end == std::string::npos) end = v.size();
        cases.push_back(std::stoi(v.substr(at, end - at)));
        at = end + 1;
      }
    }
  }
  if (cases.empty())
    for (int i = start; i < start + count; ++i) cases.push_back(i);
  if (bundle.empty() || models.empty() || work.empty()) {
    std::fprintf(stderr,
                 "usage: ofx-fuzz --bundle B --models DIR --work DIR [--seed S] "
                 "[--start I] [--count N] [--max-side M]\n");
    return 2;
  }
  const std::vector<std::string> depths = {"|u1", "<u2", "<f2", "<f4"};
  for (int i : cases) {
    Fuzz f(seed * 0x9E3779B97F4A7C15ull + uint64_t(i));
    const bool sr = f.chance(0.5);
    int w = side(f, max_side), h = side(f, max_side);
    if (sr && long(w) * h > 1024L * 1024) w = std::max(1, (1024 * 1024) / h);  // x2..x4 stays sane
    const int c = f.chance(0.5) ? 4 : 3;
    const std::string descr = f.pick(depths);
    const std::string in = work + "/in.npy";
    write_picture(f, in, w, h, c, descr);

    std::vector<std::string> args = {"ofx-fuzz",
                                     "--bundle",
                                     bundle,
                                     "--plugin",
                                     sr ? "org.kwaflux.SuperResolution" : "org.kwaflux.Denoise",
                                     "--input",
                                     in};
    // Memory layout and placement: they must never change a pixel (checked below).
    std::vector<std::string> layout;
    if (f.chance(0.4)) layout.push_back("--negative-rowbytes");
    if (f.chance(0.4)) {
      layout.push_back("--row-pad");
      layout.push_back(std::to_string(f.chance(0.5) ? f.uniform(1, 7) : f.uniform(8, 4096)));
    }
    int ox = 0, oy = 0, down = 1;
    if (f.chance(0.5)) {
      ox = f.uniform(-5000, 5000);
      oy = f.uniform(-5000, 5000);
    }
    if (f.chance(0.3)) {
      down = f.uniform(2, 5);
      args.push_back("--render-scale-down");
      args.push_back(std::to_string(down));
    }
    if (ox || oy) {
      // An offset that is not a whole pixel at the render scale moves the image by a fraction
      // of a pixel: then it is content, not layout, and both runs get it.
      auto& where = (ox % down || oy % down) ? args : layout;
      where.push_back("--offset");
      where.push_back(std::to_string(ox) + "," + std::to_string(oy));
    }
    // The host's capabilities are fixed for a process (plugins read them once, in setHost, as
    // for any real host), so the flavour is one per run, not per case.
    if (host == "resolve")
      args.push_back("--resolve");
    else if (host == "nomultires") {
      args.push_back("--multires");
      args.push_back("0");
    }
    if (f.chance(0.2)) {
      args.push_back("--context");
      args.push_back("general");
    }
    if (f.chance(0.1)) args.push_back("--unpremultiplied");
    if (f.chance(0.05)) args.push_back("--disconnect-source");
    const int threads = f.chance(0.3) ? f.uniform(2, 4) : 1;
    layout.push_back("--threads");
    layout.push_back(std::to_string(threads));
    args.push_back("--frames");
    args.push_back(std::to_string(f.uniform(1, 3)));
    // The model: mostly the small test model of the right kind; sometimes a wrong one.
    double m = f.real(0.0, 1.0);
    std::string model = m < 0.7    ? models + (sr ? "/sr.onnx" : "/dn.onnx")
                        : m < 0.85 ? ""  // the default models by name (KWAFLUX_MODELS_DIR)
                        : m < 0.9  ? models + "/fail.onnx"
                        : m < 0.95 ? models + (sr ? "/dn.onnx" : "/sr.onnx")
                                   : models + "/no-such-model.onnx";
    args.push_back("--param");
    args.push_back("model=" + model);
    auto param = [&](const std::string& name, const std::string& value) {
      args.push_back("--param");
      args.push_back(name + "=" + value);
    };
    if (f.chance(0.5)) param(sr ? "autoDenoise" : "autoStrength", f.chance(0.5) ? "1" : "0");
    if (sr) {
      if (f.chance(0.8)) param("scale", f.chance(0.85) ? "0" : integer(f, -1, 3));
      if (f.chance(0.5)) param("denoise", number(f));
      if (f.chance(0.4)) param("sourceScale", number(f));
      if (f.chance(0.3)) param("splitView", f.chance(0.5) ? "1" : "0");
    } else {
      if (f.chance(0.8)) param("strength", number(f));
    }
    if (f.chance(0.4)) param("tileSize", integer(f, 0, 300));
    if (f.chance(0.3)) param("device", integer(f, 0, 2));
    // Temporal access: the radius (odd values too), neighbours fetched in another order (which
    // must not change a pixel) and a neighbour the host cannot give (a smaller window).
    if (f.chance(0.5)) param("temporalRadius", integer(f, 0, 3));
    if (f.chance(0.3)) {
      layout.push_back("--render-order");
      layout.push_back("reverse");
    }
    if (f.chance(0.1)) {
      args.push_back("--fail-fetch");
      args.push_back(std::to_string(f.uniform(0, 2)));
    }
    if (f.chance(0.05)) {
      args.push_back("--odd-frame");  // a neighbour one pixel narrower: left out
      args.push_back(std::to_string(f.uniform(0, 2)));
    }

    std::string line;
    for (size_t k = 1; k < args.size(); ++k) line += (k > 1 ? " " : "") + args[k];
    for (auto& a : layout) line += " " + a;
    std::printf("fuzz %d config %dx%dx%d %s %s\n", i, w, h, c, descr.c_str(), line.c_str());
    std::fflush(stdout);
    const int frames =
        std::stoi(args[std::find(args.begin(), args.end(), "--frames") - args.begin() + 1]);
    auto out_name = [&](const std::string& stem, int t) {
      return work + "/" + stem + (frames > 1 ? "." + std::to_string(t) : "") + ".npy";
    };
    auto run = [&](std::vector<std::string> a, const std::string& stem) {
      for (int t = 0; t < frames; ++t) std::remove(out_name(stem, t).c_str());
      a.push_back("--output");
      a.push_back(work + "/" + stem + ".npy");
      std::vector<char*> cargs;
      for (auto& s : a) cargs.push_back(s.data());
      cargs.push_back(nullptr);
      g_opt = Options{};
      return kwaflux_test_host_main(int(cargs.size()) - 1, cargs.data());
    };
    std::vector<std::string> fuzzed = args;
    fuzzed.insert(fuzzed.end(), layout.begin(), layout.end());
    int rc = run(fuzzed, "a");
    if (rc == 0 && !layout.empty()) {
      // The same render in the plainest layout (positive rowBytes, no padding, no offset,
      // one thread) must give the same pixels, frame for frame.
      std::printf("fuzz %d recheck\n", i);
      int rc2 = run(args, "b");
      int differ = 0;
      for (int t = 0; t < frames && rc2 == 0; ++t) {
        npy::Image a = npy::read(out_name("a", t)), b = npy::read(out_name("b", t));
        if (a.width != b.width || a.height != b.height || a.bytes != b.bytes) ++differ;
      }
      std::printf("fuzz %d layout %s rc2=%d differ=%d\n", i,
                  rc2 == 0 && differ == 0 ? "same" : "DIFF", rc2, differ);
    }
    std::printf("fuzz %d rc=%d\n", i, rc);
    std::fflush(stdout);
  }
  std::printf("fuzz done\n");
  return 0;
}
