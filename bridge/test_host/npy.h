// Minimal .npy (NumPy format 1.0/2.0) reader and writer for H x W x C images, so tests can hand
// the test host real pixels and read its output back with numpy.load.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace npy {

struct Image {
  std::string descr;  // "|u1", "<u2", "<f2", "<f4"
  int height = 0, width = 0, channels = 0;
  std::vector<unsigned char> bytes;  // row-major, top row first
  int bytes_per_channel() const {
    return descr == "|u1" || descr == "<u1" ? 1 : descr == "<u2" || descr == "<f2" ? 2 : 4;
  }
  size_t row_bytes() const { return size_t(width) * channels * bytes_per_channel(); }
};

inline std::string header_value(const std::string& header, const std::string& key) {
  size_t at = header.find("'" + key + "'");
  if (at == std::string::npos) throw std::runtime_error("npy header lacks " + key);
  at = header.find(':', at);
  size_t end = key == "shape" ? header.find(')', at) + 1 : header.find(',', at);
  std::string v = header.substr(at + 1, end - at - 1);
  size_t b = v.find_first_not_of(" "), e = v.find_last_not_of(" ");
  return v.substr(b, e - b + 1);
}

inline Image read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + ": cannot open");
  char magic[8];
  f.read(magic, 8);
  if (!f || std::memcmp(magic, "\x93NUMPY", 6) != 0)
    throw std::runtime_error(path + ": not a .npy");
  uint32_t hlen = 0;
  if (magic[6] == 1) {
    uint16_t h16;
    f.read(reinterpret_cast<char*>(&h16), 2);
    hlen = h16;
  } else {
    f.read(reinterpret_cast<char*>(&hlen), 4);
  }
  std::string header(hlen, '\0');
  f.read(header.data(), hlen);
  Image img;
  std::string descr = header_value(header, "descr");
  img.descr = descr.substr(1, descr.size() - 2);
  if (img.descr != "|u1" && img.descr != "<u2" && img.descr != "<f2" && img.descr != "<f4")
    throw std::runtime_error(path + ": dtype " + img.descr +
                             " is not uint8/uint16/float16/float32");
  if (header_value(header, "fortran_order") != "False")
    throw std::runtime_error(path + ": fortran order not supported");
  std::string shape = header_value(header, "shape");
  int dims[3] = {0, 0, 0};
  if (std::sscanf(shape.c_str(), "(%d, %d, %d)", &dims[0], &dims[1], &dims[2]) != 3)
    throw std::runtime_error(path + ": shape " + shape + " is not H x W x C");
  img.height = dims[0];
  img.width = dims[1];
  img.channels = dims[2];
  img.bytes.resize(img.row_bytes() * img.height);
  f.read(reinterpret_cast<char*>(img.bytes.data()), img.bytes.size());
  if (!f) throw std::runtime_error(path + ": truncated");
  return img;
}

inline void write(const std::string& path, const Image& img) {
  std::string header = "{'descr': '" + img.descr + "', 'fortran_order': False, 'shape': (" +
                       std::to_string(img.height) + ", " + std::to_string(img.width) + ", " +
                       std::to_string(img.channels) + "), }";
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::ofstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + ": cannot write");
  f.write("\x93NUMPY\x01\x00", 8);
  uint16_t hlen = static_cast<uint16_t>(header.size());
  f.write(reinterpret_cast<const char*>(&hlen), 2);
  f.write(header.data(), header.size());
  f.write(reinterpret_cast<const char*>(img.bytes.data()), img.bytes.size());
}

}  // namespace npy
