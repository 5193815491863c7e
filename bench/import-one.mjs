// Imports the module named on the command line (or nothing), and exits: what a dependency adds to start-up.
// Plain JavaScript, so it runs both under `node --import tsx` and under plain node.
const name = process.argv[2];
if (name) await import(name);
