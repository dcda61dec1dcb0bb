namespace SharpTune.Tokenization;

/// <summary>Token ids and, for each, the UTF-16 range [Start, End) of the input text it came from. Tokens added by
/// the post-processor (BOS/EOS) have the empty range (0, 0), as in Hugging Face.</summary>
public sealed record TokenEncoding(int[] Ids, (int Start, int End)[] Offsets);
