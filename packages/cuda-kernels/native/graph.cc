// Graph capture: the kernels queued on the addon's stream between graphBegin and graphEnd are
// recorded instead of run, instantiated once, and replayed with one launch each (graphLaunch), or
// many times between two events (graphReplay, for timing).
// The memory the recorded kernels use stays with the graph (the allocator's pools) until
// graphDestroy. Host <-> device copies and waits are refused while capturing (transfer.cc,
// device.cc): they would either break the capture or record a value that changes between replays.
#include <unordered_map>

#include "allocator.h"
#include "binding.h"
#include "common.h"

namespace blora {

namespace {

struct Recorded {
  cudaGraphExec_t exec;
  int pool;
};

std::unordered_map<int, Recorded> graphs;
int nextGraph = 1;
bool active = false;

// graphBegin(): starts recording the stream.
NAN_METHOD(GraphBegin) {
  guarded([&] {
    requireDevice();
    if (active) fail("captureGraph: a capture is already running");
    check(cudaStreamBeginCapture(stream(), cudaStreamCaptureModeRelaxed), "beginning a graph capture");
    allocator().beginCapture();
    active = true;
  });
}

// graphEnd(keep) -> id: stops recording; keep false (the recording function failed) discards it.
NAN_METHOD(GraphEnd) {
  guarded([&] {
    if (!active) fail("captureGraph: no capture is running");
    const bool keep = boolArg(info, 0);
    active = false;
    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(stream(), &graph);
    const int pool = allocator().endCapture();
    if (ended != cudaSuccess || !keep) {
      if (graph) cudaGraphDestroy(graph);
      cudaGetLastError();
      allocator().releasePool(pool);
      if (keep) throwCuda(ended, "ending a graph capture (an operation that cannot be recorded ran while capturing)");
      info.GetReturnValue().Set(Nan::New(0));
      return;
    }
    cudaGraphExec_t exec = nullptr;
    const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    if (made != cudaSuccess) {
      cudaGetLastError();
      allocator().releasePool(pool);
      throwCuda(made, "instantiating a captured graph");
    }
    const int id = nextGraph++;
    graphs.emplace(id, Recorded{exec, pool});
    info.GetReturnValue().Set(Nan::New(id));
  });
}

Recorded& recorded(const Info& info) {
  const auto it = graphs.find(int(integerArg(info, 0, "graph id")));
  if (it == graphs.end()) fail("captureGraph: the graph was disposed");
  return it->second;
}

// graphLaunch(id): queues one replay.
NAN_METHOD(GraphLaunch) {
  guarded([&] {
    if (active) fail("captureGraph: cannot replay a graph while capturing");
    check(cudaGraphLaunch(recorded(info).exec, stream()), "replaying a captured graph");
  });
}

// graphReplay(id, times) -> milliseconds of device time for `times` replays back to back (between
// two events; it waits for them): what the benchmarks time.
NAN_METHOD(GraphReplay) {
  guarded([&] {
    if (active) fail("captureGraph: cannot replay a graph while capturing");
    cudaGraphExec_t exec = recorded(info).exec;
    const int64_t times = integerArg(info, 1, "times");
    cudaEvent_t start = nullptr, stop = nullptr;
    check(cudaEventCreate(&start), "graphReplay (event)");
    check(cudaEventCreate(&stop), "graphReplay (event)");
    float ms = 0;
    cudaError_t err = cudaEventRecord(start, stream());
    for (int64_t i = 0; err == cudaSuccess && i < times; i++) err = cudaGraphLaunch(exec, stream());
    if (err == cudaSuccess) err = cudaEventRecord(stop, stream());
    if (err == cudaSuccess) err = cudaEventSynchronize(stop);
    if (err == cudaSuccess) err = cudaEventElapsedTime(&ms, start, stop);
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    check(err, "replaying a captured graph (timed)");
    info.GetReturnValue().Set(Nan::New(double(ms)));
  });
}

// graphDestroy(id): waits for its replays, then frees it and gives its memory back to the cache.
NAN_METHOD(GraphDestroy) {
  guarded([&] {
    const int id = int(integerArg(info, 0, "graph id"));
    const auto it = graphs.find(id);
    if (it == graphs.end()) return;
    synchronize();
    cudaGraphExecDestroy(it->second.exec);
    allocator().releasePool(it->second.pool);
    graphs.erase(it);
  });
}

}  // namespace

bool capturingGraph() { return active; }

void registerGraphBindings(v8::Local<v8::Object> target) {
  Nan::SetMethod(target, "graphBegin", GraphBegin);
  Nan::SetMethod(target, "graphEnd", GraphEnd);
  Nan::SetMethod(target, "graphLaunch", GraphLaunch);
  Nan::SetMethod(target, "graphReplay", GraphReplay);
  Nan::SetMethod(target, "graphDestroy", GraphDestroy);
}

}  // namespace blora
