// Accuracy of kernels/elementwise_math.h against double libm (and of tfjs's cpu Erf formula),
// over every STEP-th float32 bit pattern (all finite and special values):
//   g++ -std=c++17 -O3 -march=native -fopenmp -ffp-contract=fast -fno-trapping-math -fno-math-errno
//       -Ikernels bench/elementwise_accuracy.cpp -o /tmp/acc && /tmp/acc 61     (~30 s; 4099: instant)
// Prints the max error in ulp of the correctly rounded result and any special-value mismatch.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <cfloat>
#include <vector>
#include "elementwise_math.h"
using namespace fd;
static double ulp_of(double ref) {
  float f = (float)ref;
  float a = std::fabs(f);
  if (a >= FLT_MAX) return std::ldexp(1.0, 104);
  return (double)std::nextafterf(a, INFINITY) - (double)a;
}
template <class F, class R>
void check(const char* name, F f, R ref, unsigned step, float lo_excl = -INFINITY, float hi_excl = INFINITY) {
  // inputs: every step-th bit pattern
  std::vector<float> xs;
  xs.reserve((1ull << 32) / step + 16);
  for (uint64_t b = 0; b < (1ull << 32); b += step) {
    uint32_t u = (uint32_t)b;
    float x;
    memcpy(&x, &u, 4);
    if (!std::isnan(x) && x > lo_excl && x < hi_excl) xs.push_back(x);
  }
  for (float x : {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1.0f, -1.0f, 1e-45f, -1e-45f, FLT_MAX, -FLT_MAX})
    xs.push_back(x);
  std::vector<float> ys(xs.size());
#pragma omp simd
  for (size_t i = 0; i < xs.size(); ++i) ys[i] = f(xs[i]);
  double worst = 0;
  float wx = 0;
  long bad = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    double r = ref((double)xs[i]);
    float y = ys[i];
    if (std::isnan(r) || std::isnan(y)) {
      if (std::isnan(r) != std::isnan(y)) {
        if (bad++ < 5) printf("  %s NaN mismatch x=%a y=%a ref=%a\n", name, xs[i], y, r);
      }
      continue;
    }
    if (std::isinf(r) || std::isinf(y)) {
      if ((float)r != y) {
        if (bad++ < 5) printf("  %s inf mismatch x=%a y=%a ref=%a\n", name, xs[i], y, r);
      }
      continue;
    }
    if ((float)r == 0 && y == 0) {
      if (std::signbit((float)r) != std::signbit(y) && bad++ < 5)
        printf("  %s zero sign x=%a y=%a ref=%a\n", name, xs[i], y, r);
      continue;
    }
    double e = std::fabs((double)y - r) / ulp_of(r);
    if (e > worst) {
      worst = e;
      wx = xs[i];
    }
  }
  printf("%-8s n=%zu max %.3f ulp at x=%a (%.9g)  bad=%ld\n", name, xs.size(), worst, wx, wx, bad);
}
// tfjs cpu's erf (Abramowitz-Stegun 7.1.26 in float64, rounded to float32)
float tfjs_erf(float xf) {
  double xi = xf;
  double sign = xi > 0 ? 1 : xi < 0 ? -1 : xi;
  double v = std::fabs(xi);
  double p = 0.3275911, a1 = 0.254829592, a2 = -0.284496736, a3 = 1.421413741, a4 = -1.453152027, a5 = 1.061405429;
  double t = 1.0 / (1.0 + p * v);
  return (float)(sign * (1.0 - (((((a5 * t + a4) * t) + a3) * t + a2) * t + a1) * t * std::exp(-v * v)));
}
void check_tfjs_erf(unsigned step) {
  double maxabs = 0, maxulp = 0, wx = 0, wxu = 0;
  double maxabs_n = 0;
  for (uint64_t b = 0; b < (1ull << 32); b += step) {
    uint32_t u = (uint32_t)b;
    float x;
    memcpy(&x, &u, 4);
    if (std::isnan(x)) continue;
    double r = std::erf((double)x);
    float y = tfjs_erf(x);
    float z = em::erf(x);
    double e = std::fabs(y - r);
    if (e > maxabs) {
      maxabs = e;
      wx = x;
    }
    double eu = e / ulp_of(r);
    if (eu > maxulp && std::fabs(x) > 1e-2) {
      maxulp = eu;
      wxu = x;
    }
    maxabs_n = std::max(maxabs_n, std::fabs(z - r));
  }
  printf("tfjs cpu erf: max abs %.3g at %g, max %.3g ulp at %g; native erf max abs %.3g\n", maxabs, wx, maxulp, wxu,
         maxabs_n);
}

int main(int argc, char** argv) {
  unsigned step = argc > 1 ? atoi(argv[1]) : 4099;
  check(
      "exp", [](float x) { return em::exp(x); }, [](double x) { return std::exp(x); }, step);
  check(
      "log", [](float x) { return em::log(x); }, [](double x) { return std::log(x); }, step);
  check(
      "log1p", [](float x) { return em::log1p(x); }, [](double x) { return std::log1p(x); }, step);
  check(
      "expm1", [](float x) { return em::expm1(x); }, [](double x) { return std::expm1(x); }, step);
  check(
      "tanh", [](float x) { return em::tanh(x); }, [](double x) { return std::tanh(x); }, step);
  check(
      "sigmoid", [](float x) { return em::sigmoid(x); }, [](double x) { return 1.0 / (1.0 + std::exp(-x)); }, step);
  check(
      "erf", [](float x) { return em::erf(x); }, [](double x) { return std::erf(x); }, step);
  check_tfjs_erf(step);
}
