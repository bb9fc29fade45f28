import java.sql.*;
// A JDBC driver against lancesql serve (pgjdbc over the Postgres wire, the Arrow Flight SQL JDBC
// driver over Flight SQL): DatabaseMetaData, a query and a
// PreparedStatement. Prints one line per fact; test_pgwire.py and test_flight.py check them.
public class JdbcProbe {
    public static void main(String[] args) throws Exception {
        String url = args[0];
        try (Connection c = DriverManager.getConnection(url, "lancesql", "")) {
            DatabaseMetaData md = c.getMetaData();
            System.out.println("product " + md.getDatabaseProductName() + " " + md.getDatabaseProductVersion());
            try (ResultSet rs = md.getTables(null, "public", "%", new String[]{"TABLE"})) {
                while (rs.next()) System.out.println("table " + rs.getString("TABLE_SCHEM") + "." + rs.getString("TABLE_NAME") + " " + rs.getString("TABLE_TYPE"));
            } catch (SQLException e) { System.out.println("getTables ERR " + e.getMessage()); }
            try (ResultSet rs = md.getColumns(null, "public", "products", "%")) {
                while (rs.next()) System.out.println("column " + rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME") + " " + rs.getInt("DATA_TYPE") + " nullable=" + rs.getInt("NULLABLE"));
            } catch (SQLException e) { System.out.println("getColumns ERR " + e.getMessage()); }
            try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT count(*) FROM products")) {
                rs.next(); System.out.println("count " + rs.getLong(1));
            } catch (SQLException e) { System.out.println("query ERR " + e.getMessage()); }
            try (PreparedStatement p = c.prepareStatement("SELECT id, name, price FROM products WHERE id < ? ORDER BY id")) {
                p.setLong(1, 3);
                try (ResultSet rs = p.executeQuery()) { while (rs.next()) System.out.println("row " + rs.getLong(1) + " " + rs.getString(2) + " " + rs.getDouble(3)); }
            } catch (SQLException e) { System.out.println("prepared ERR " + e.getMessage()); }
        }
    }
}
