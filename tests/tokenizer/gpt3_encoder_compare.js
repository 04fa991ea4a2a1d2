// Compares `vktrain tokenize` ids with gpt-3-encoder's (an independent JavaScript port of GPT-2's encoder.py).
//   node gpt3_encoder_compare.js PACKAGE_DIR TEXT IDS [TEXT IDS ...]
// Exits 1 at the first difference, printing where and the text around it.
'use strict';
const fs = require('fs');
const path = require('path');
const { encode, decode } = require(path.resolve(process.argv[2]));
// gpt-3-encoder's encode() concatenates arrays once per pre-token, which is quadratic in the ids of one call (hours
// for the fortunes corpus). So a long text is encoded in pieces cut before a line break that follows a non-space
// character: GPT-2's pattern always ends a pre-token there (runs of letters, numbers or other characters stop at
// white space) and the pre-token that starts there depends on nothing before it, so the ids are those of the whole.
function encodeLarge(text) {
  const out = [];
  const re = /(?<=\S)\n/g;
  let start = 0, m;
  while ((m = re.exec(text)) !== null) {
    if (m.index - start < 4096) continue;
    for (const id of encode(text.slice(start, m.index))) out.push(id);
    start = m.index;
  }
  for (const id of encode(text.slice(start))) out.push(id);
  return out;
}

let failed = false;
for (let i = 3; i + 1 < process.argv.length; i += 2) {
  const textFile = process.argv[i], idsFile = process.argv[i + 1];
  const text = fs.readFileSync(textFile, 'utf8');
  const line = fs.readFileSync(idsFile, 'utf8').trim();
  const got = line === '' ? [] : line.split(' ').map(Number);
  const t0 = process.hrtime.bigint();
  const want = encodeLarge(text);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  let k = 0;
  while (k < want.length && k < got.length && want[k] === got[k]) ++k;
  if (k < want.length || k < got.length) {
    const from = Math.max(0, k - 5);
    console.log(`${textFile}: ids differ at token ${k} of ${want.length} (vktrain has ${got.length})`);
    console.log(`  gpt-3-encoder: ${JSON.stringify(want.slice(from, k + 5))} = ${JSON.stringify(want.slice(from, k + 5).map(x => decode([x])))}`);
    console.log(`  vktrain:       ${JSON.stringify(got.slice(from, k + 5))} = ${JSON.stringify(got.slice(from, k + 5).map(x => decode([x])))}`);
    failed = true;
    continue;
  }
  if (decode(got) !== text) {
    console.log(`${textFile}: gpt-3-encoder's decode of vktrain's ids is not the text`);
    failed = true;
    continue;
  }
  console.log(`${textFile}: ${want.length} ids identical (gpt-3-encoder took ${ms.toFixed(0)} ms)`);
}
process.exit(failed ? 1 : 0);
