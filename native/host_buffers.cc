// Host memory for the 'native' tfjs backend: 64-byte-aligned blocks exposed to JS as external
// ArrayBuffers, so tensors live in memory the kernels read and write in place and that is released
// the moment tfjs disposes the tensor (not at some later garbage collection). Freeing detaches the
// ArrayBuffer first, so a stale JS view sees length 0 and the addon's checks reject it: a use after
// free becomes a clear error, never a read of freed memory.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "args.h"
#include "block_size.h"
#include "ops.h"

namespace fd_native {
namespace {

constexpr size_t kAlign = 64;  // a cache line and an AVX-512 vector

// The data is freed by freeHostBuffer or, if that never ran, by the GC finalizer; the record itself
// always by the finalizer.
struct Block {
  void* data;  // 64-byte aligned, inside the malloc'd block at base
  void* base;
  size_t bytes;
  bool freed;
};

std::atomic<int64_t> g_bytes{0}, g_blocks{0};

void release_data(Block* b) {
  if (b->freed) return;
  std::free(b->base);
  b->freed = true;
  g_bytes -= static_cast<int64_t>(b->bytes);
  g_blocks -= 1;
}

void finalize(napi_env, void* wrapped, void*) {
  Block* b = static_cast<Block*>(wrapped);
  release_data(b);
  delete b;
}

// allocHostBuffer(bytes, zero?) -> ArrayBuffer
Napi::Value AllocHostBuffer(const Napi::CallbackInfo& info) {
  return guarded(info, "allocHostBuffer", [&](const Args& a) -> Napi::Value {
    a.expect_count(1);
    const int64_t bytes = a.size(0, "bytes");
    const bool zero = info.Length() > 1 && info[1].ToBoolean().Value();
    const size_t rounded = (static_cast<size_t>(bytes) + kAlign - 1) / kAlign * kAlign;
    // malloc and align by hand rather than aligned_alloc: glibc's memalign over-allocates and splits
    // each block, so a freed multi-MB block did not fit the next request of the same size and every
    // allocation took fresh pages (measured: 2048 page faults, ~4 ms, per 8 MB output; the op itself
    // 0.7 ms). Blocks of one size from malloc are reused warm.
    void* base = std::malloc(rounded + kAlign);
    if (!base) a.range_error("out of memory allocating " + std::to_string(bytes) + " bytes");
    void* data = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(base) + kAlign - 1) &
                                         ~static_cast<uintptr_t>(kAlign - 1));
    if (zero) std::memset(data, 0, static_cast<size_t>(bytes));
    Block* block = new Block{data, base, rounded, false};
    napi_value out;
    // The block record is wrapped onto the ArrayBuffer: freeHostBuffer finds it with napi_unwrap, and
    // the wrap's finalizer runs when the GC collects the buffer.
    napi_status st = napi_create_external_arraybuffer(info.Env(), data, static_cast<size_t>(bytes), nullptr, nullptr,
                                                      &out);
    if (st == napi_ok) st = napi_wrap(info.Env(), out, block, finalize, nullptr, nullptr);
    if (st != napi_ok) {
      std::free(base);
      delete block;
      a.range_error("could not create an external ArrayBuffer (napi status " + std::to_string(st) + ")");
    }
    g_bytes += static_cast<int64_t>(rounded);
    g_blocks += 1;
    return Napi::Value(info.Env(), out);
  });
}

// freeHostBuffer(ArrayBuffer): frees the block now and detaches the buffer. A second call, or a call
// on a buffer this function did not allocate, throws.
Napi::Value FreeHostBuffer(const Napi::CallbackInfo& info) {
  return guarded(info, "freeHostBuffer", [&](const Args& a) -> Napi::Value {
    a.expect_count(1);
    if (!info[0].IsArrayBuffer()) a.type_error("buffer must be an ArrayBuffer from allocHostBuffer");
    napi_env env = info.Env();
    bool detached = false;
    napi_is_detached_arraybuffer(env, info[0], &detached);
    if (detached) a.range_error("buffer was already freed");
    void* data = nullptr;
    size_t length = 0;
    napi_get_arraybuffer_info(env, info[0], &data, &length);
    Block* block = nullptr;
    if (napi_unwrap(env, info[0], reinterpret_cast<void**>(&block)) != napi_ok || !block || block->data != data)
      a.range_error("buffer was not allocated by allocHostBuffer");
    if (napi_detach_arraybuffer(env, info[0]) != napi_ok) a.range_error("buffer could not be detached");
    release_data(block);
    return info.Env().Undefined();
  });
}

Napi::Value HostBufferStats(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("bytes", Napi::Number::New(info.Env(), static_cast<double>(g_bytes.load())));
  o.Set("buffers", Napi::Number::New(info.Env(), static_cast<double>(g_blocks.load())));
  return o;
}

}  // namespace

// blockSize(bytes) -> the size class of a cached block for `bytes` (kernels/block_size.h)
Napi::Value BlockSize(const Napi::CallbackInfo& info) {
  return guarded(info, "blockSize", [&](const Args& a) -> Napi::Value {
    a.expect_count(1);
    return Napi::Number::New(info.Env(), static_cast<double>(fd::block_size(static_cast<size_t>(a.size(0, "bytes")))));
  });
}

void register_host_buffers(Napi::Env env, Napi::Object exports) {
  exports.Set("allocHostBuffer", Napi::Function::New(env, AllocHostBuffer, "allocHostBuffer"));
  exports.Set("freeHostBuffer", Napi::Function::New(env, FreeHostBuffer, "freeHostBuffer"));
  exports.Set("hostBufferStats", Napi::Function::New(env, HostBufferStats, "hostBufferStats"));
  exports.Set("blockSize", Napi::Function::New(env, BlockSize, "blockSize"));
}

}  // namespace fd_native
