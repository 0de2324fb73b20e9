// Temporary device memory for a launcher: a block of the caching allocator held for the
// lifetime of the object. Releasing it right after the launches that use it are queued is
// safe, because every launch runs on one stream: the block's next user is ordered after them.
#pragma once

#include <cstddef>

#include "allocator.h"

namespace blora {

class DeviceScratch {
 public:
  explicit DeviceScratch(size_t bytes) : ptr_(bytes > 0 ? allocator().allocate(bytes) : nullptr) {}
  ~DeviceScratch() {
    if (!ptr_) return;
    try {
      allocator().release(ptr_);
    } catch (...) {
      // Only an unknown pointer throws, and this one came from the allocator.
    }
  }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;

  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_;
};

}  // namespace blora
