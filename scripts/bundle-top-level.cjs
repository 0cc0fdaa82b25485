// Preloaded by scripts/bundle.mjs into the `kiln version` that makes the code cache: fails it when the
// bundle's top level (the function bin/kiln compiles, until it returns) requires a package or a built-in
// that Node had not loaded before (the shims of node:fs, node:path… only look up what is there; process
// and os, which the CLI's own modules use, are small). Such a
// require would run on every command's start, whatever needs it: import it where it is used instead
// (see lazyPackages, lazyBuiltins in bundle.mjs).
'use strict';
const Module = require('node:module');
const { Script } = require('node:vm');

const requiredAtTopLevel = [];
let topLevel = false;
const small = new Set(['process', 'os']);
const require_ = Module.prototype.require;
Module.prototype.require = function require(id) {
  const builtin = id.replace(/^node:/, '');
  if (topLevel && !small.has(builtin) && !process.moduleLoadList.includes(`NativeModule ${builtin}`)) requiredAtTopLevel.push(id);
  return require_.call(this, id);
};
const runInThisContext = Script.prototype.runInThisContext;
Script.prototype.runInThisContext = function run(...args) {
  const bundle = runInThisContext.apply(this, args);
  return (...bundleArgs) => {
    topLevel = true;
    try {
      return bundle(...bundleArgs);
    } finally {
      topLevel = false;
      if (requiredAtTopLevel.length > 0) {
        process.stderr.write(`dist/kiln.cjs requires ${requiredAtTopLevel.join(', ')} at start-up: import them where they are used (see lazyPackages, lazyBuiltins in scripts/bundle.mjs)\n`);
        process.exit(1);
      }
    }
  };
};
