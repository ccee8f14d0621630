// Solves the sign-in page's proof-of-work challenge: finds a number n such that
// SHA-256("<challenge>:<n>") starts with <difficulty> zero bits, in small batches so the page stays
// responsive, then puts n into the form and enables its button. Same-origin, no dependencies; a
// plain SHA-256 (challenges are ASCII), since crypto.subtle is missing outside secure contexts.
(function (root) {
  'use strict';
  var K = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
  ];
  var W = new Int32Array(64);

  function rotr(x, n) { return (x >>> n) | (x << (32 - n)); }

  // SHA-256 of an ASCII string, as eight 32-bit words.
  function sha256(text) {
    var length = text.length;
    var blocks = ((length + 9 + 63) >> 6) << 4;
    var words = new Int32Array(blocks);
    for (var i = 0; i < length; i++) words[i >> 2] |= (text.charCodeAt(i) & 0xff) << (24 - (i % 4) * 8);
    words[length >> 2] |= 0x80 << (24 - (length % 4) * 8);
    words[blocks - 1] = length * 8;
    var h0 = 0x6a09e667, h1 = 0xbb67ae85, h2 = 0x3c6ef372, h3 = 0xa54ff53a, h4 = 0x510e527f, h5 = 0x9b05688c, h6 = 0x1f83d9ab, h7 = 0x5be0cd19;
    for (var offset = 0; offset < blocks; offset += 16) {
      for (var t = 0; t < 64; t++) {
        if (t < 16) W[t] = words[offset + t];
        else {
          var a15 = W[t - 15], a2 = W[t - 2];
          var s0 = rotr(a15, 7) ^ rotr(a15, 18) ^ (a15 >>> 3);
          var s1 = rotr(a2, 17) ^ rotr(a2, 19) ^ (a2 >>> 10);
          W[t] = (W[t - 16] + s0 + W[t - 7] + s1) | 0;
        }
      }
      var a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7;
      for (var r = 0; r < 64; r++) {
        var S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        var ch = (e & f) ^ (~e & g);
        var temp1 = (h + S1 + ch + K[r] + W[r]) | 0;
        var S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        var maj = (a & b) ^ (a & c) ^ (b & c);
        var temp2 = (S0 + maj) | 0;
        h = g; g = f; f = e; e = (d + temp1) | 0; d = c; c = b; b = a; a = (temp1 + temp2) | 0;
      }
      h0 = (h0 + a) | 0; h1 = (h1 + b) | 0; h2 = (h2 + c) | 0; h3 = (h3 + d) | 0;
      h4 = (h4 + e) | 0; h5 = (h5 + f) | 0; h6 = (h6 + g) | 0; h7 = (h7 + h) | 0;
    }
    return [h0, h1, h2, h3, h4, h5, h6, h7];
  }

  function leadingZeroBits(digest) {
    var bits = 0;
    for (var i = 0; i < digest.length; i++) {
      if (digest[i] === 0) { bits += 32; continue; }
      return bits + Math.clz32(digest[i]);
    }
    return bits;
  }

  function meets(challenge, counter, difficulty) {
    return leadingZeroBits(sha256(challenge + ':' + counter)) >= difficulty;
  }

  // Searches from `start` for at most `budget` numbers; the number found, or -1.
  function search(challenge, difficulty, start, budget) {
    for (var counter = start; counter < start + budget; counter++) if (meets(challenge, counter, difficulty)) return counter;
    return -1;
  }

  root.powChallenge = { sha256: sha256, leadingZeroBits: leadingZeroBits, search: search };

  if (typeof document === 'undefined') return;

  function start() {
    var box = document.querySelector('[data-pow-challenge]');
    if (!box) return;
    var form = box.closest('form');
    var challenge = box.getAttribute('data-pow-challenge');
    var difficulty = Number(box.getAttribute('data-pow-difficulty'));
    var answer = form.querySelector('input[name="pow_solution"]');
    var button = form.querySelector('button[type="submit"]');
    var working = box.querySelector('[data-pow-working]');
    var done = box.querySelector('[data-pow-done]');
    if (button) button.disabled = true;
    if (working) working.hidden = false;
    var next = 0;
    (function batch() {
      var found = search(challenge, difficulty, next, 20000);
      if (found < 0) {
        next += 20000;
        setTimeout(batch, 0);
        return;
      }
      answer.value = String(found);
      if (working) working.hidden = true;
      if (done) done.hidden = false;
      if (button) button.disabled = false;
    })();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})(typeof globalThis !== 'undefined' ? globalThis : this);
