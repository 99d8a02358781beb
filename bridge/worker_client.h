// The isolated render worker seen from the plugin: a Python process from the configured venv
// that renders the frames the host hands over, so the host's own Python and a crash in the
// models never meet the host's process. No function here touches a Python symbol.
#pragma once

#include <string>
#include <vector>

#include "python_host.h"

namespace kwaflux::worker {

// How to start the worker, from kwaflux.cfg (see python_host.cpp's load_config).
struct Settings {
  std::string python;                   // the venv's bin/python
  std::vector<std::string> pythonpath;  // kwaflux.cfg's pythonpath lines, ahead of site-packages
  std::vector<std::string> env;         // kwaflux.cfg's env lines (NAME=VALUE) for the worker
  std::string module = "kwaflux_ofx.hosts.ofx.worker";
  std::string log_dir;
  double timeout_s = 120;  // longest wait for one reply (start-up included) before giving up
};

// Each returns "" on success, else one line for the user (the cause and the log file).
std::string render(const Settings& s, const RenderCall& call, double* engine_s);
std::string measure(const Settings& s, const RenderCall& call, std::string* text);
std::string doctor(const Settings& s, std::string* text);

// Ends the worker (if one runs) and frees the shared buffers: the host unloads the plugin.
void shutdown();

}  // namespace kwaflux::worker
