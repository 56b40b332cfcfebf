// fd_mpi when the build found no MPI (native/mpi/mpi_flags.js printed nothing): the addon still
// loads, available() is false, and every collective throws the reason, which names the fix.
#include "mpi_comm.h"

#include <cstdlib>

namespace fd_mpi {

namespace {
const char kReason[] =
    "fused-distill was built without MPI: install Open MPI (Debian/Ubuntu: apt-get install openmpi-bin "
    "libopenmpi-dev) or MPICH so that `mpicc` is on PATH, then rebuild with `npm rebuild fused-distill` "
    "(or `npm run build:native` in a checkout)";

[[noreturn]] void fail() { throw Error(kReason); }
}  // namespace

bool built_with_mpi() { return false; }
std::string unavailable_reason() { return kReason; }
bool active() { return false; }
Info init() { fail(); }
Info world(const char*) { fail(); }
void allgather_counts(int64_t, int64_t*) { fail(); }
void allgatherv(const void*, int, void*, const int*, const int*) { fail(); }
void broadcast_count(int64_t*, int) { fail(); }
void broadcast_bytes(void*, int, int) { fail(); }
void barrier() { fail(); }
void finalize() {}
void abort(int code) { std::_Exit(code); }

}  // namespace fd_mpi
