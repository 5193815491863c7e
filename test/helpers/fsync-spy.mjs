// Loaded with --import: appends "fsync <path>" to fsync.log in the working folder for every fsync the
// process makes, so a test can see what a build makes durable (a power loss cannot be staged in a test;
// the syscalls it relies on can be seen).
import fs, { appendFileSync } from "node:fs";
import { syncBuiltinESMExports } from "node:module";

const log = `${process.cwd()}/fsync.log`;
const paths = new Map();
const note = (path) => path !== undefined && appendFileSync(log, `fsync ${path}\n`);

const openSync = fs.openSync;
fs.openSync = (path, ...rest) => {
  const fd = openSync(path, ...rest);
  paths.set(fd, String(path));
  return fd;
};
const fsyncSync = fs.fsyncSync;
fs.fsyncSync = (fd) => {
  fsyncSync(fd);
  note(paths.get(fd));
};
const open = fs.promises.open;
const handles = new WeakMap();
fs.promises.open = async (path, ...rest) => {
  const handle = await open(path, ...rest);
  handles.set(handle, String(path));
  return handle;
};
const probe = await open(import.meta.filename ?? new URL(import.meta.url).pathname, "r");
const FileHandle = Object.getPrototypeOf(probe);
await probe.close();
const sync = FileHandle.sync;
FileHandle.sync = async function () {
  await sync.call(this);
  note(handles.get(this));
};
syncBuiltinESMExports();
