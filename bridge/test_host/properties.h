// The test host's property sets, and the OFX property suite over them.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "../ofx/ofx_abi.h"

namespace host_props {

struct Property {
  enum Kind { Pointer, String, Double, Int } kind = Int;
  std::vector<void*> p;
  std::vector<std::string> s;
  std::vector<double> d;
  std::vector<int> i;
  int size() const {
    switch (kind) {
      case Pointer:
        return int(p.size());
      case String:
        return int(s.size());
      case Double:
        return int(d.size());
      default:
        return int(i.size());
    }
  }
};

struct PropertySet {
  std::string what;
  std::mutex mutex;
  std::map<std::string, Property> props;

  explicit PropertySet(std::string w = "") : what(std::move(w)) {}
  OfxPropertySetHandle handle() { return reinterpret_cast<OfxPropertySetHandle>(this); }
  static PropertySet* from(OfxPropertySetHandle h) { return reinterpret_cast<PropertySet*>(h); }

  void set_int(const std::string& name, std::vector<int> v) {
    std::lock_guard<std::mutex> lock(mutex);
    Property& p = props[name];
    p.kind = Property::Int;
    p.i = std::move(v);
  }
  void set_double(const std::string& name, std::vector<double> v) {
    std::lock_guard<std::mutex> lock(mutex);
    Property& p = props[name];
    p.kind = Property::Double;
    p.d = std::move(v);
  }
  void set_string(const std::string& name, std::vector<std::string> v) {
    std::lock_guard<std::mutex> lock(mutex);
    Property& p = props[name];
    p.kind = Property::String;
    p.s = std::move(v);
  }
  void set_pointer(const std::string& name, void* v) {
    std::lock_guard<std::mutex> lock(mutex);
    Property& p = props[name];
    p.kind = Property::Pointer;
    p.p = {v};
  }
  bool has(const std::string& name) {
    std::lock_guard<std::mutex> lock(mutex);
    return props.count(name) != 0;
  }
  double get_double(const std::string& name, int index = 0, double dflt = 0) {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = props.find(name);
    if (it == props.end() || index >= it->second.size()) return dflt;
    if (it->second.kind == Property::Double) return it->second.d[index];
    if (it->second.kind == Property::Int) return it->second.i[index];
    return dflt;
  }
  std::string get_string(const std::string& name, int index = 0) {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = props.find(name);
    if (it == props.end() || it->second.kind != Property::String || index >= it->second.size())
      return "";
    return it->second.s[index];
  }
  void copy_from(PropertySet& other) {
    std::lock_guard<std::mutex> lock(other.mutex);
    props = other.props;
  }
};

// The suite the host hands plugins (kOfxPropertySuite, version 1).
extern OfxPropertySuiteV1 g_property_suite;

}  // namespace host_props
