#!/usr/bin/env node
// Finds MPI for the optional fused_distill_mpi addon (binding.gyp): `node native/mpi/mpi_flags.js
// found|cflags|libs|describe` prints 1/0, the compile flags, the link flags, or a line saying what was
// found. It asks the MPI compiler wrapper first (Open MPI's `mpicc --showme:*`, MPICH's
// `mpicc -compile_info/-link_info`), then pkg-config (ompi-c, mpich, mpi). Nothing found (or
// FUSED_DISTILL_MPI=0) prints 0 / nothing, and the addon is built from its stub (native/mpi/no_mpi.cc),
// so `npm install` never fails for want of MPI.
'use strict';
const { execFileSync } = require('child_process');

function run(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 20000 }).trim();
  } catch {
    return null;
  }
}

// Whitespace-split flags (MPI's wrappers print no quoted arguments).
const split = (s) => s.split(/\s+/).filter(Boolean);

function fromOpenMpiWrapper(mpicc) {
  const compile = run(mpicc, ['--showme:compile']);
  const link = run(mpicc, ['--showme:link']);
  if (compile === null || link === null) return null;
  return { via: `${mpicc} --showme`, cflags: split(compile), libs: split(link) };
}

// MPICH's wrapper prints a whole command line ("gcc -I... -L... -lmpi"): drop the compiler and keep
// the include, define and library flags.
function fromMpichWrapper(mpicc) {
  const compile = run(mpicc, ['-compile_info']);
  const link = run(mpicc, ['-link_info']);
  if (compile === null || link === null) return null;
  const keep = (re) => (s) => split(s).filter((f) => re.test(f));
  return {
    via: `${mpicc} -compile_info`,
    cflags: keep(/^-[ID]/)(compile),
    libs: keep(/^(-[Ll]|-Wl,|-pthread$)/)(link),
  };
}

function fromPkgConfig() {
  for (const pkg of ['ompi-c', 'mpich', 'mpi']) {
    const cflags = run('pkg-config', ['--cflags', pkg]);
    const libs = run('pkg-config', ['--libs', pkg]);
    if (cflags !== null && libs !== null && /-lmpi/.test(libs)) {
      return { via: `pkg-config ${pkg}`, cflags: split(cflags), libs: split(libs) };
    }
  }
  return null;
}

function find() {
  if (process.env.FUSED_DISTILL_MPI === '0') return null;
  const mpicc = process.env.MPICC || 'mpicc';
  for (const found of [fromOpenMpiWrapper(mpicc), fromMpichWrapper(mpicc), fromPkgConfig()]) {
    if (found && found.libs.some((f) => /^-lmpi/.test(f))) {
      // An MPI outside the loader's default path (e.g. /opt/openmpi) is found at run time through an
      // rpath to each of its library directories.
      const rpaths = found.libs.filter((f) => f.startsWith('-L')).map((f) => `-Wl,-rpath,${f.slice(2)}`);
      return { ...found, libs: [...found.libs, ...rpaths] };
    }
  }
  return null;
}

const mpi = find();
const what = process.argv[2] || 'describe';
if (what === 'found') console.log(mpi ? 1 : 0);
else if (what === 'cflags') console.log(mpi ? mpi.cflags.join(' ') : '');
else if (what === 'libs') console.log(mpi ? mpi.libs.join(' ') : '');
else console.log(mpi ? `MPI found through ${mpi.via}: ${[...mpi.cflags, ...mpi.libs].join(' ')}` : 'MPI not found');
