// The OFX property suite of kwaflux-ofx-test-host over its PropertySet (see properties.h).
#include "properties.h"

namespace host_props {
namespace {

template <typename Fill>
OfxStatus prop_set(OfxPropertySetHandle h, const char* name, int index, Property::Kind kind,
                   Fill fill) {
  if (!h || !name || index < 0) return kOfxStatErrBadHandle;
  PropertySet* ps = PropertySet::from(h);
  std::lock_guard<std::mutex> lock(ps->mutex);
  Property& p = ps->props[name];
  if (p.size() > 0 && p.kind != kind) {
    // A plugin setting an int on a double property (or the reverse) is common; keep the new kind.
    p = Property();
  }
  p.kind = kind;
  fill(p, index);
  return kOfxStatOK;
}

OfxStatus propSetPointer(OfxPropertySetHandle h, const char* n, int i, void* v) {
  return prop_set(h, n, i, Property::Pointer, [&](Property& p, int k) {
    if (int(p.p.size()) <= k) p.p.resize(k + 1);
    p.p[k] = v;
  });
}
OfxStatus propSetString(OfxPropertySetHandle h, const char* n, int i, const char* v) {
  return prop_set(h, n, i, Property::String, [&](Property& p, int k) {
    if (int(p.s.size()) <= k) p.s.resize(k + 1);
    p.s[k] = v ? v : "";
  });
}
OfxStatus propSetDouble(OfxPropertySetHandle h, const char* n, int i, double v) {
  return prop_set(h, n, i, Property::Double, [&](Property& p, int k) {
    if (int(p.d.size()) <= k) p.d.resize(k + 1);
    p.d[k] = v;
  });
}
OfxStatus propSetInt(OfxPropertySetHandle h, const char* n, int i, int v) {
  return prop_set(h, n, i, Property::Int, [&](Property& p, int k) {
    if (int(p.i.size()) <= k) p.i.resize(k + 1);
    p.i[k] = v;
  });
}
OfxStatus propSetPointerN(OfxPropertySetHandle h, const char* n, int c, void* const* v) {
  for (int k = 0; k < c; ++k)
    if (OfxStatus s = propSetPointer(h, n, k, v[k])) return s;
  return kOfxStatOK;
}
OfxStatus propSetStringN(OfxPropertySetHandle h, const char* n, int c, const char* const* v) {
  for (int k = 0; k < c; ++k)
    if (OfxStatus s = propSetString(h, n, k, v[k])) return s;
  return kOfxStatOK;
}
OfxStatus propSetDoubleN(OfxPropertySetHandle h, const char* n, int c, const double* v) {
  for (int k = 0; k < c; ++k)
    if (OfxStatus s = propSetDouble(h, n, k, v[k])) return s;
  return kOfxStatOK;
}
OfxStatus propSetIntN(OfxPropertySetHandle h, const char* n, int c, const int* v) {
  for (int k = 0; k < c; ++k)
    if (OfxStatus s = propSetInt(h, n, k, v[k])) return s;
  return kOfxStatOK;
}

template <typename Read>
OfxStatus prop_get(OfxPropertySetHandle h, const char* name, int index, Read read) {
  if (!h || !name) return kOfxStatErrBadHandle;
  PropertySet* ps = PropertySet::from(h);
  std::lock_guard<std::mutex> lock(ps->mutex);
  auto it = ps->props.find(name);
  if (it == ps->props.end()) return kOfxStatErrUnknown;
  if (index < 0 || index >= it->second.size()) return kOfxStatErrBadIndex;
  return read(it->second, index);
}

OfxStatus propGetPointer(OfxPropertySetHandle h, const char* n, int i, void** v) {
  return prop_get(h, n, i, [&](Property& p, int k) {
    if (p.kind != Property::Pointer) return kOfxStatErrValue;
    *v = p.p[k];
    return kOfxStatOK;
  });
}
OfxStatus propGetString(OfxPropertySetHandle h, const char* n, int i, char** v) {
  return prop_get(h, n, i, [&](Property& p, int k) {
    if (p.kind != Property::String) return kOfxStatErrValue;
    *v = const_cast<char*>(p.s[k].c_str());
    return kOfxStatOK;
  });
}
OfxStatus propGetDouble(OfxPropertySetHandle h, const char* n, int i, double* v) {
  return prop_get(h, n, i, [&](Property& p, int k) {
    if (p.kind == Property::Double)
      *v = p.d[k];
    else if (p.kind == Property::Int)
      *v = p.i[k];
    else
      return kOfxStatErrValue;
    return kOfxStatOK;
  });
}
OfxStatus propGetInt(OfxPropertySetHandle h, const char* n, int i, int* v) {
  return prop_get(h, n, i, [&](Property& p, int k) {
    if (p.kind == Property::Int)
      *v = p.i[k];
    else if (p.kind == Property::Double)
      *v = int(p.d[k]);
    else
      return kOfxStatErrValue;
    return kOfxStatOK;
  });
}
OfxStatus propGetPointerN(OfxPropertySetHandle h, const char* n, int c, void** v) {
  for (int k = 0; k < c; ++k)
    if (OfxStatus s = propGetPointer(h, n, k, &v[k])) return s;
  return kOfxStatOK;
}
OfxStatus propGetStringN(OfxPropertySetHandle h, const char* n, int c, char** v) {
  for (int k = 0; k < c; ++k)
    if (OfxStatus s = propGetString(h, n, k, &v[k])) return s;
  return kOfxStatOK;
}
OfxStatus propGetDoubleN(OfxPropertySetHandle h, const char* n, int c, double* v) {
  for (int k = 0; k < c; ++k)
    if (OfxStatus s = propGetDouble(h, n, k, &v[k])) return s;
  return kOfxStatOK;
}
OfxStatus propGetIntN(OfxPropertySetHandle h, const char* n, int c, int* v) {
  for (int k = 0; k < c; ++k)
    if (OfxStatus s = propGetInt(h, n, k, &v[k])) return s;
  return kOfxStatOK;
}
OfxStatus propReset(OfxPropertySetHandle h, const char* n) {
  if (!h || !n) return kOfxStatErrBadHandle;
  PropertySet* ps = PropertySet::from(h);
  std::lock_guard<std::mutex> lock(ps->mutex);
  ps->props.erase(n);
  return kOfxStatOK;
}
OfxStatus propGetDimension(OfxPropertySetHandle h, const char* n, int* count) {
  if (!h || !n) return kOfxStatErrBadHandle;
  PropertySet* ps = PropertySet::from(h);
  std::lock_guard<std::mutex> lock(ps->mutex);
  auto it = ps->props.find(n);
  if (it == ps->props.end()) return kOfxStatErrUnknown;
  *count = it->second.size();
  return kOfxStatOK;
}

}  // namespace

OfxPropertySuiteV1 g_property_suite = {
    propSetPointer, propSetString,  propSetDouble,   propSetInt,     propSetPointerN,
    propSetStringN, propSetDoubleN, propSetIntN,     propGetPointer, propGetString,
    propGetDouble,  propGetInt,     propGetPointerN, propGetStringN, propGetDoubleN,
    propGetIntN,    propReset,      propGetDimension};

}  // namespace host_props
