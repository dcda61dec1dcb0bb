namespace SharpTune.Evaluation;

/// <summary>
/// The Porter stemmer as NLTK's <c>PorterStemmer()</c> runs it by default (mode NLTK_EXTENSIONS), which is what
/// Google's rouge-score uses with <c>use_stemmer=True</c>: Porter (1980) plus Martin Porter's later changes and
/// NLTK's own (a table of irregular forms, 'ies'/'ied' on four-letter words, 'alli' tried first, 'fulli', 'logi').
/// Input is a lowercase word.
/// </summary>
public static class PorterStemmer
{
    static readonly Dictionary<string, string> Irregular = new()
    {
        ["sky"] = "sky", ["skies"] = "sky", ["dying"] = "die", ["lying"] = "lie", ["tying"] = "tie", ["news"] = "news",
        ["innings"] = "inning", ["inning"] = "inning", ["outings"] = "outing", ["outing"] = "outing",
        ["cannings"] = "canning", ["canning"] = "canning", ["howe"] = "howe",
        ["proceed"] = "proceed", ["exceed"] = "exceed", ["succeed"] = "succeed",
    };

    /// <summary>A suffix rule: replace <c>Suffix</c> by <c>Replacement</c> when <c>Condition</c>(stem) holds.
    /// The suffix "*d" means a double consonant (rule 1b).</summary>
    readonly record struct Rule(string Suffix, string Replacement, Func<string, bool>? Condition);

    public static string Stem(string word)
    {
        if (Irregular.TryGetValue(word, out var irregular)) return irregular;
        if (word.Length <= 2) return word;
        string stem = Step1a(word);
        stem = Step1b(stem);
        stem = Step1c(stem);
        stem = Step2(stem);
        stem = Step3(stem);
        stem = Step4(stem);
        stem = Step5a(stem);
        return Step5b(stem);
    }

    static bool IsConsonant(string w, int i) =>
        w[i] switch
        {
            'a' or 'e' or 'i' or 'o' or 'u' => false,
            'y' => i == 0 || !IsConsonant(w, i - 1),
            _ => true,
        };

    /// <summary>Porter's m: the number of vowel-consonant transitions.</summary>
    static int Measure(string stem)
    {
        int m = 0;
        for (int i = 1; i < stem.Length; i++)
            if (!IsConsonant(stem, i - 1) && IsConsonant(stem, i)) m++;
        return m;
    }

    static bool PositiveMeasure(string stem) => Measure(stem) > 0;

    static bool ContainsVowel(string stem)
    {
        for (int i = 0; i < stem.Length; i++)
            if (!IsConsonant(stem, i)) return true;
        return false;
    }

    static bool EndsDoubleConsonant(string w) => w.Length >= 2 && w[^1] == w[^2] && IsConsonant(w, w.Length - 1);

    static bool EndsCvc(string w) =>
        w.Length >= 3 && IsConsonant(w, w.Length - 3) && !IsConsonant(w, w.Length - 2) && IsConsonant(w, w.Length - 1) && w[^1] is not ('w' or 'x' or 'y')
        || w.Length == 2 && !IsConsonant(w, 0) && IsConsonant(w, 1);

    /// <summary>The first rule whose suffix matches decides: applied when its condition holds, else the word stays.</summary>
    static string Apply(string word, IEnumerable<Rule> rules)
    {
        foreach (var (suffix, replacement, condition) in rules)
        {
            if (suffix == "*d")
            {
                if (!EndsDoubleConsonant(word)) continue;
                string s = word[..^2];
                return condition is null || condition(s) ? s + replacement : word;
            }
            if (!word.EndsWith(suffix, StringComparison.Ordinal)) continue;
            string stem = word[..^suffix.Length];
            return condition is null || condition(stem) ? stem + replacement : word;
        }
        return word;
    }

    static string Step1a(string w)
    {
        if (w.EndsWith("ies", StringComparison.Ordinal) && w.Length == 4) return w[..^3] + "ie";
        return Apply(w, [new("sses", "ss", null), new("ies", "i", null), new("ss", "ss", null), new("s", "", null)]);
    }

    static string Step1b(string w)
    {
        if (w.EndsWith("ied", StringComparison.Ordinal)) return w[..^3] + (w.Length == 4 ? "ie" : "i");
        if (w.EndsWith("eed", StringComparison.Ordinal))
        {
            string stem = w[..^3];
            return Measure(stem) > 0 ? stem + "ee" : w;
        }
        string? intermediate = null;
        foreach (string suffix in new[] { "ed", "ing" })
        {
            if (w.EndsWith(suffix, StringComparison.Ordinal) && ContainsVowel(w[..^suffix.Length]))
            {
                intermediate = w[..^suffix.Length];
                break;
            }
        }
        if (intermediate is null) return w;
        char last = intermediate.Length > 0 ? intermediate[^1] : '\0';
        return Apply(intermediate,
        [
            new("at", "ate", null), new("bl", "ble", null), new("iz", "ize", null),
            new("*d", last.ToString(), _ => last is not ('l' or 's' or 'z')),
            new("", "e", stem => Measure(stem) == 1 && EndsCvc(stem)),
        ]);
    }

    static string Step1c(string w) => Apply(w, [new("y", "i", stem => stem.Length > 1 && IsConsonant(stem, stem.Length - 1))]);

    static string Step2(string w)
    {
        if (w.EndsWith("alli", StringComparison.Ordinal) && PositiveMeasure(w[..^4])) return Step2(w[..^4] + "al");
        return Apply(w,
        [
            new("ational", "ate", PositiveMeasure), new("tional", "tion", PositiveMeasure), new("enci", "ence", PositiveMeasure),
            new("anci", "ance", PositiveMeasure), new("izer", "ize", PositiveMeasure), new("bli", "ble", PositiveMeasure),
            new("alli", "al", PositiveMeasure), new("entli", "ent", PositiveMeasure), new("eli", "e", PositiveMeasure),
            new("ousli", "ous", PositiveMeasure), new("ization", "ize", PositiveMeasure), new("ation", "ate", PositiveMeasure),
            new("ator", "ate", PositiveMeasure), new("alism", "al", PositiveMeasure), new("iveness", "ive", PositiveMeasure),
            new("fulness", "ful", PositiveMeasure), new("ousness", "ous", PositiveMeasure), new("aliti", "al", PositiveMeasure),
            new("iviti", "ive", PositiveMeasure), new("biliti", "ble", PositiveMeasure), new("fulli", "ful", PositiveMeasure),
            // the 'l' of 'logi' counts with the stem, so short stems (geo-, theo-) qualify
            new("logi", "log", _ => PositiveMeasure(w[..^3])),
        ]);
    }

    static string Step3(string w) => Apply(w,
    [
        new("icate", "ic", PositiveMeasure), new("ative", "", PositiveMeasure), new("alize", "al", PositiveMeasure),
        new("iciti", "ic", PositiveMeasure), new("ical", "ic", PositiveMeasure), new("ful", "", PositiveMeasure),
        new("ness", "", PositiveMeasure),
    ]);

    static string Step4(string w)
    {
        static bool Gt1(string stem) => Measure(stem) > 1;
        return Apply(w,
        [
            new("al", "", Gt1), new("ance", "", Gt1), new("ence", "", Gt1), new("er", "", Gt1), new("ic", "", Gt1),
            new("able", "", Gt1), new("ible", "", Gt1), new("ant", "", Gt1), new("ement", "", Gt1), new("ment", "", Gt1),
            new("ent", "", Gt1), new("ion", "", stem => Measure(stem) > 1 && stem.Length > 0 && stem[^1] is 's' or 't'),
            new("ou", "", Gt1), new("ism", "", Gt1), new("ate", "", Gt1), new("iti", "", Gt1), new("ous", "", Gt1),
            new("ive", "", Gt1), new("ize", "", Gt1),
        ]);
    }

    static string Step5a(string w)
    {
        if (!w.EndsWith('e')) return w;
        string stem = w[..^1];
        int m = Measure(stem);
        return m > 1 || m == 1 && !EndsCvc(stem) ? stem : w;
    }

    static string Step5b(string w) => Apply(w, [new("ll", "l", _ => Measure(w[..^1]) > 1)]);
}
