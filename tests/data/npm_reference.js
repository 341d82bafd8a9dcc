// Reference GPT-2 token ids from two independent npm encoders, for tests/data/gpt2_vs_npm.sh.
//   node npm_reference.js NODE_MODULES OUTDIR FILE...   writes OUTDIR/<i>.gpt3enc and OUTDIR/<i>.tiktoken
//   node npm_reference.js --classes OUT                 one of L N S O per code point (surrogates skipped)
'use strict';
const fs = require('fs');
const path = require('path');

if (process.argv[2] === '--classes') {
  const L = /^\p{L}$/u, N = /^\p{N}$/u, S = /^\s$/u;
  const out = [];
  for (let cp = 0; cp <= 0x10ffff; ++cp) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    const c = String.fromCodePoint(cp);
    out.push(S.test(c) ? 'S' : L.test(c) ? 'L' : N.test(c) ? 'N' : 'O');
  }
  fs.writeFileSync(process.argv[3], out.join(''));
  process.exit(0);
}

const modules = process.argv[2], outdir = process.argv[3];
const gpt3 = require(path.join(modules, 'gpt-3-encoder'));
const { Tiktoken } = require(path.join(modules, 'js-tiktoken', 'dist', 'lite.cjs'));
let ranks = require(path.join(modules, 'js-tiktoken', 'dist', 'ranks', 'gpt2.cjs'));
ranks = ranks.default || ranks;
const tiktoken = new Tiktoken(ranks);

process.argv.slice(4).forEach((file, i) => {
  const bytes = fs.readFileSync(file);
  const text = bytes.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(bytes)) {
    console.error(`${file}: not valid UTF-8; node would change its bytes`);
    process.exit(3);
  }
  const a = gpt3.encode(text), b = tiktoken.encode(text);
  fs.writeFileSync(path.join(outdir, `${i}.gpt3enc`), a.join('\n') + (a.length ? '\n' : ''));
  fs.writeFileSync(path.join(outdir, `${i}.tiktoken`), b.join('\n') + (b.length ? '\n' : ''));
  if (gpt3.decode(a) !== text) console.error(`${file}: gpt-3-encoder does not round-trip`);
});
