// A chatty app for the bench's log stage: besides answering, it writes CHATTY_LINES log
// lines a second with console.log (in batches every 10 ms), as a very talkative service would.
const rate = Number(process.env.CHATTY_LINES ?? 0);
const perTick = Math.round(rate / 100);
let n = 0;
if (perTick > 0) {
  setInterval(() => {
    for (let i = 0; i < perTick; i++) console.log(`${new Date().toISOString()} chatty ${process.pid} line ${n++} GET /api/items?page=3 200 1.2ms`);
  }, 10);
}
module.exports = (req, res) => res.end('chatty\n');
