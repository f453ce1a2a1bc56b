// GET /: which worker answered, as in the other examples (a route handler of the App Router).
export const dynamic = 'force-dynamic';

export function GET() {
  return new Response(`next ${process.pid}\n`, { headers: { 'content-type': 'text/plain' } });
}
