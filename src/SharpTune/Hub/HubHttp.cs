using System.Net;
using System.Net.Http.Headers;

namespace SharpTune.Hub;

/// <summary>HTTP plumbing for the Hub: builds requests (the token goes to the Hub's own origin only, never to a CDN
/// it redirects to) and follows redirects by hand, since the Hub's redirect responses carry the file metadata.</summary>
internal sealed class HubHttp(HttpClient http, Uri endpoint, string? token)
{
    const int MaxRedirects = 10;

    static readonly Lazy<HttpClient> SharedClient = new(() => new HttpClient(new SocketsHttpHandler
    {
        AllowAutoRedirect = false,
        AutomaticDecompression = DecompressionMethods.None,
        ConnectTimeout = TimeSpan.FromSeconds(30),
        PooledConnectionLifetime = TimeSpan.FromMinutes(5),
    })
    {
        Timeout = TimeSpan.FromSeconds(100),
    });

    /// <summary>The process-wide client used when the caller passes none: it must not follow redirects itself.</summary>
    public static HttpClient Default => SharedClient.Value;

    public Uri Endpoint => endpoint;

    /// <summary>Sends a request and follows redirects: every one when <paramref name="followCrossOrigin"/>, else only
    /// those staying on the endpoint's origin (a renamed repository), returning a redirect to elsewhere as is.
    /// <paramref name="rangeStart"/> asks for the bytes from that offset on.</summary>
    public async Task<HttpResponseMessage> SendAsync(
        HttpMethod method, Uri uri, bool followCrossOrigin, long? rangeStart, CancellationToken ct)
    {
        for (int hops = 0; ; hops++)
        {
            var response = await http.SendAsync(NewRequest(method, uri, rangeStart), HttpCompletionOption.ResponseHeadersRead, ct);
            if (response.RequestMessage?.RequestUri is { } sent && sent != uri)
            {
                response.Dispose();
                throw new SharpTuneException(
                    "The HttpClient given to HubClient follows redirects by itself; create its handler with AllowAutoRedirect = false.");
            }
            if (!IsRedirect(response.StatusCode) || response.Headers.Location is null) return response;
            var next = new Uri(uri, response.Headers.Location);
            if (!followCrossOrigin && !SameOrigin(next, endpoint)) return response;
            response.Dispose();
            if (hops == MaxRedirects) throw new SharpTuneException($"More than {MaxRedirects} redirects from {uri}, last to {next}.");
            uri = next;
        }
    }

    public static bool IsRedirect(HttpStatusCode status) =>
        status is HttpStatusCode.MovedPermanently or HttpStatusCode.Found or HttpStatusCode.SeeOther
            or HttpStatusCode.TemporaryRedirect or HttpStatusCode.PermanentRedirect;

    public static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? values.FirstOrDefault() : null;

    HttpRequestMessage NewRequest(HttpMethod method, Uri uri, long? rangeStart)
    {
        var request = new HttpRequestMessage(method, uri);
        request.Headers.UserAgent.Add(new ProductInfoHeaderValue("SharpTune", "1.0"));
        // Sizes and hashes refer to the raw bytes, so no compression.
        request.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("identity"));
        if (token is not null && SameOrigin(uri, endpoint))
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        if (rangeStart is long start)
            request.Headers.Range = new RangeHeaderValue(start, null);
        return request;
    }

    static bool SameOrigin(Uri a, Uri b) =>
        a.Scheme == b.Scheme && string.Equals(a.Host, b.Host, StringComparison.OrdinalIgnoreCase) && a.Port == b.Port;
}
