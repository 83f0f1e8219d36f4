/// The package's version, as `gsasr --version` and `gsasr serve`'s `/api/info` report it.
public enum GSASRVersion {
    public static let string = "0.6.0-dev"
}
