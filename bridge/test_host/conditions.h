// The real hosts' conditions the test host can put a plugin in: a Python of the host's own
// already running in the process (as Natron's), and a render worker killed or frozen mid-sequence.
#pragma once

#include <string>
#include <vector>

namespace host_conditions {

// Loads LIB (a libpython) globally and starts it, as a host linked to its own Python does.
// With natron_env, first sets PYTHONPATH to that Python's library and PYTHONNOUSERSITE=1 for
// the whole process, as Natron does at start-up. Prints "host python VERSION".
void start_host_python(const std::string& lib, bool natron_env);

// The processes this one started (the plugin's render worker), from /proc.
std::vector<int> child_pids();

// Sends `sig` to every child; prints what it did ("host: sent signal 9 to worker pid N").
void signal_children(int sig, int at_frame);

}  // namespace host_conditions
